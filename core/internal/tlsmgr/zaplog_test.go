package tlsmgr

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/zap"
)

func TestZapToSlog(t *testing.T) {
	var buf bytes.Buffer
	l := newZapLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	l.Named("obtain").With(zap.String("z", "1")).Info("chatty", zap.String("b", "2"), zap.String("a", "3"))
	l.Error("broken", zap.Error(errors.New("boom")))
	got := buf.String()
	for _, want := range []string{
		`level=DEBUG msg=chatty component=certmagic z=1 logger=obtain a=3 b=2`,
		`level=ERROR msg=broken component=certmagic error=boom`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q:\n%s", want, got)
		}
	}
	// At info level certmagic's info lines are dropped before any work.
	buf.Reset()
	l = newZapLogger(slog.New(slog.NewTextHandler(&buf, nil)))
	l.Info("chatty")
	l.Warn("kept")
	if strings.Contains(buf.String(), "chatty") || !strings.Contains(buf.String(), "kept") {
		t.Errorf("info-level log: %q", buf.String())
	}
}
