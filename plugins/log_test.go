package plugins

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestLogWriter(t *testing.T) {
	var buf bytes.Buffer
	w := &logWriter{log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})).With("plugin", "p"), stream: "stderr"}
	// Lines split across writes, JSON records at their level, plain text.
	for _, chunk := range []string{
		`{"@level":"warn","@message":"disk low","@timestamp":"x","free":3}` + "\n" + `plain `,
		"text\n\n",
		`{"@level":"debug","@message":"detail"}` + "\n",
		`{"not":"hclog"}` + "\n",
	} {
		if n, err := w.Write([]byte(chunk)); n != len(chunk) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	got := buf.String()
	for _, want := range []string{
		`level=WARN msg="disk low" plugin=p free=3`,
		`level=INFO msg="plain text" plugin=p stream=stderr`,
		`level=DEBUG msg=detail plugin=p`,
		`level=INFO msg="{\"not\":\"hclog\"}" plugin=p stream=stderr`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %s:\n%s", want, got)
		}
	}
	if strings.Count(got, "\n") != 4 {
		t.Errorf("want 4 records (the empty line dropped):\n%s", got)
	}
	// A line longer than the cap is logged in pieces, not buffered forever.
	buf.Reset()
	w.Write(bytes.Repeat([]byte("x"), maxLogLine+10))
	if len(w.buf) != 0 || !strings.Contains(buf.String(), "xxxx") {
		t.Errorf("an overlong line was not flushed (%d bytes buffered)", len(w.buf))
	}
}

func TestHCLogAdapter(t *testing.T) {
	var buf bytes.Buffer
	var l hclog.Logger = newHCLog(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})), "p")
	l.Debug("hidden")
	l.Named("stdio").With("k", 1).Warn("seen", "timestamp", "dropped", "a", "b")
	if l.IsDebug() || !l.IsInfo() || l.GetLevel() != hclog.Info {
		t.Errorf("levels: debug %v info %v level %v", l.IsDebug(), l.IsInfo(), l.GetLevel())
	}
	l.StandardLogger(nil).Print("from the std logger")
	got := buf.String()
	for _, want := range []string{`level=WARN msg=seen plugin=p source=stdio k=1 a=b`, `msg="from the std logger" plugin=p`} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %s:\n%s", want, got)
		}
	}
	if strings.Contains(got, "hidden") || strings.Contains(got, "dropped") {
		t.Errorf("log has what it should not:\n%s", got)
	}
}
