package plugins

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sort"
	"sync"
)

// maxLogLine bounds one buffered plugin output line; longer lines are
// logged in pieces.
const maxLogLine = 64 << 10

// logWriter turns a plugin's stdout or stderr (which go-plugin relays once
// the plugin serves) into gateway log records, one per line, tagged with
// the plugin name. A line in hclog's JSON form (what sdk.Logger writes)
// keeps its level, message and attributes; any other line is logged as
// is at Info.
type logWriter struct {
	log    *slog.Logger
	stream string
	mu     sync.Mutex
	buf    []byte
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			if len(w.buf) >= maxLogLine {
				w.line(w.buf)
				w.buf = w.buf[:0]
			}
			break
		}
		w.line(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) == 0 {
		w.buf = nil // let a large burst's buffer go
	}
	return len(p), nil
}

func (w *logWriter) line(b []byte) {
	b = bytes.TrimRight(b, "\r")
	if len(b) == 0 {
		return
	}
	var rec map[string]any
	if b[0] == '{' && json.Unmarshal(b, &rec) == nil {
		if msg, ok := rec["@message"].(string); ok {
			lvl, _ := rec["@level"].(string)
			level := slog.LevelInfo
			switch lvl {
			case "trace", "debug":
				level = slog.LevelDebug
			case "warn":
				level = slog.LevelWarn
			case "error":
				level = slog.LevelError
			}
			keys := make([]string, 0, len(rec))
			for k := range rec {
				if len(k) == 0 || k[0] != '@' {
					keys = append(keys, k)
				}
			}
			sort.Strings(keys)
			args := make([]any, 0, 2*len(keys))
			for _, k := range keys {
				args = append(args, k, rec[k])
			}
			w.log.Log(context.Background(), level, msg, args...)
			return
		}
	}
	w.log.Info(string(b), "stream", w.stream)
}
