package sdk

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

func ExampleDeny() {
	a := Deny(401, "who are you?\n")
	fmt.Println(a.Reply.Status, a.Reply.Header.Get("Content-Type"), string(a.Reply.Body))
	// Output: 401 text/plain; charset=utf-8 who are you?
}

// TestLoggerFormat: records carry the keys and timestamp layout go-plugin
// reads from a plugin, so the gateway keeps their level and attributes.
func TestLoggerFormat(t *testing.T) {
	var buf bytes.Buffer
	newLogger(&buf).Warn("disk low", "free", 3)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("%v: %s", err, buf.String())
	}
	if rec["@level"] != "warn" || rec["@message"] != "disk low" || rec["free"] != 3.0 {
		t.Errorf("record %v", rec)
	}
	ts, _ := rec["@timestamp"].(string)
	if _, err := time.Parse("2006-01-02T15:04:05.000000Z07:00", ts); err != nil {
		t.Errorf("@timestamp %q: %v", ts, err)
	}
	for _, k := range []string{"time", "level", "msg"} {
		if _, ok := rec[k]; ok {
			t.Errorf("record has slog's own key %q: %v", k, rec)
		}
	}
}

func TestBase(t *testing.T) {
	var b Base
	if err := b.Configure(t.Context(), "x", nil); err != nil {
		t.Error(err)
	}
	if a, err := b.HandleRequest(t.Context(), &Request{}); a != nil || err != nil {
		t.Errorf("HandleRequest = %v, %v", a, err)
	}
	if a, err := b.HandleResponse(t.Context(), &Response{}); a != nil || err != nil {
		t.Errorf("HandleResponse = %v, %v", a, err)
	}
}
