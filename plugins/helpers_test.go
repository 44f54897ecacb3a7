package plugins

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// testPlugin is the path of plugins/internal/testplugin, built once.
var testPlugin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-plugins-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testPlugin = filepath.Join(dir, "testplugin")
	cmd := exec.Command("go", "build", "-o", testPlugin, "./internal/testplugin")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the test plugin:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newManager returns a Manager with fast restarts and its log, closed at
// the end of the test.
func newManager(t *testing.T) (*Manager, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	sockets := t.TempDir()
	m := NewManager(Options{
		Logger:         slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		HealthInterval: 2 * time.Second, // generous: a loaded CI machine must not fail pings
		BackoffMin:     50 * time.Millisecond,
		BackoffMax:     time.Second,
		Grace:          200 * time.Millisecond,
		SocketDir:      sockets,
	})
	t.Cleanup(func() {
		m.Close()
		// Every process's socket folder is gone, crashed ones included.
		if ents, _ := os.ReadDir(sockets); len(ents) != 0 {
			t.Errorf("%d socket folders left behind", len(ents))
		}
		if t.Failed() {
			t.Logf("manager log:\n%s", logs.String())
		}
	})
	return m, logs
}

func mustSync(t *testing.T, m *Manager, specs ...Spec) {
	t.Helper()
	if errs := m.Sync(context.Background(), specs); len(errs) > 0 {
		t.Fatalf("Sync: %v", errs)
	}
}

// upstream is the end of the chain in tests: it echoes what it saw.
var upstream = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Upstream-Secret", "s3cret")
	w.Header().Set("X-Seen-Uri", r.URL.RequestURI())
	w.Header().Set("X-Seen-Plugin", r.Header.Get("X-Plugin-Seen"))
	w.Header().Set("X-Seen-Remove-Me", r.Header.Get("X-Remove-Me"))
	w.Header().Set("X-Seen-Route-Config", r.Header.Get("X-Route-Config"))
	io.WriteString(w, "upstream\n")
})

// serve sends one request through h and returns the recorded response.
func serve(h http.Handler, hdr ...string) *http.Response {
	req := httptest.NewRequest("GET", "http://x.test/a?b=1", nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// children returns the pids whose parent is pid, from /proc.
func children(t *testing.T, pid int) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("reading /proc (these tests need Linux): %v", err)
	}
	var out []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, ok := parentOf(n); ok && ppid == pid {
			out = append(out, n)
		}
	}
	return out
}

// parentOf reads the parent pid of pid; ok is false for a process that is
// gone or a zombie (exited, only waiting to be reaped).
func parentOf(pid int) (int, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// pid (comm) state ppid ...: comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 || f[0] == "Z" {
		return 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	return ppid, err == nil
}

func alive(pid int) bool {
	_, ok := parentOf(pid)
	return ok
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
