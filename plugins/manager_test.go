package plugins

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestMiddleware(t *testing.T) {
	m, logs := newManager(t)
	mustSync(t, m,
		Spec{Name: "closed", Command: testPlugin, Timeout: time.Second},
		Spec{Name: "open", Command: testPlugin, Fail: FailOpen, Timeout: time.Second},
	)
	closed, err := m.Filter("closed", []byte(`{"k":"v"}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	open, err := m.Filter("open", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	forcedOpen := FailOpen
	override, err := m.Filter("closed", nil, &forcedOpen)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		f      *RouteFilter
		hdr    []string
		status int
		body   string
		header map[string]string // "" means absent
	}{
		{name: "allow and rewrite headers", f: closed, hdr: []string{"X-Remove-Me", "1"}, status: 200, body: "upstream\n", header: map[string]string{
			"X-Seen-Plugin": "closed", "X-Seen-Remove-Me": "", "X-Seen-Uri": "/a?b=1", "X-Seen-Route-Config": `{"k":"v"}`,
			"X-Plugin-Response": "closed", "X-Plugin-Status": "200", "X-Upstream-Secret": "",
		}},
		{name: "rewrite uri", f: closed, hdr: []string{"X-Plugin-Rewrite", "/new/path?q=2"}, status: 200, header: map[string]string{"X-Seen-Uri": "/new/path?q=2"}},
		{name: "bad uri fails closed", f: closed, hdr: []string{"X-Plugin-Rewrite", "http://evil.test/"}, status: 500, body: "filter failed closed"},
		{name: "deny with body", f: closed, hdr: []string{"X-Plugin-Deny", "403"}, status: 403, body: "denied by closed\n", header: map[string]string{"X-Denied-By": "closed", "Content-Length": "17"}},
		{name: "bad reply status fails", f: closed, hdr: []string{"X-Plugin-Deny", "99"}, status: 500},
		{name: "error fails closed", f: closed, hdr: []string{"X-Plugin-Error", "1"}, status: 500, body: "sluice: filter failed closed\n"},
		{name: "error fails open", f: open, hdr: []string{"X-Plugin-Error", "1"}, status: 200, body: "upstream\n", header: map[string]string{"X-Seen-Plugin": ""}},
		{name: "hang times out closed", f: closed, hdr: []string{"X-Plugin-Hang", "1"}, status: 500},
		{name: "hang times out open", f: open, hdr: []string{"X-Plugin-Hang", "1"}, status: 200},
		{name: "route overrides the policy", f: override, hdr: []string{"X-Plugin-Error", "1"}, status: 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := serve(tc.f.Middleware(upstream), tc.hdr...)
			got := body(t, resp)
			if resp.StatusCode != tc.status || !strings.Contains(got, tc.body) {
				t.Fatalf("got %d %q, want %d containing %q", resp.StatusCode, got, tc.status, tc.body)
			}
			for k, v := range tc.header {
				if g := resp.Header.Get(k); g != v {
					t.Errorf("header %s = %q, want %q", k, g, v)
				}
			}
		})
	}
	st, _ := m.Stats("closed")
	if st.Timeouts != 1 || st.Replies != 1 || st.FailedOpen != 1 || st.FailedShut < 3 {
		t.Errorf("stats of closed: %+v", st)
	}
	if !strings.Contains(logs.String(), "no answer within 1s") {
		t.Errorf("the timeout is not logged:\n%s", logs.String())
	}
	// The connection is mutually authenticated TLS (go-plugin AutoMTLS).
	if !strings.Contains(logs.String(), "configuring client automatic mTLS") || !strings.Contains(logs.String(), "configuring server automatic mTLS") {
		t.Errorf("AutoMTLS was not set up on both sides:\n%s", logs.String())
	}
	// The plugin's own log lines reach the gateway log with its name.
	if !strings.Contains(logs.String(), `msg=configured plugin=closed`) {
		t.Errorf("the plugin's log line is missing:\n%s", logs.String())
	}
}

func TestUnknownAndRemoved(t *testing.T) {
	m, _ := newManager(t)
	if _, err := m.Filter("nope", nil, nil); err == nil || !strings.Contains(err.Error(), "plugin nope") {
		t.Fatalf("Filter(nope) = %v", err)
	}
	mustSync(t, m, Spec{Name: "a", Command: testPlugin})
	f, err := m.Filter("a", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	pid := m.PID("a")
	mustSync(t, m) // removed
	waitUntil(t, 5*time.Second, "the removed plugin's process to end", func() bool { return !alive(pid) })
	if resp := serve(f.Middleware(upstream)); resp.StatusCode != 503 || !strings.Contains(body(t, resp), "filter unavailable a") {
		t.Fatalf("a removed plugin answered %d", resp.StatusCode)
	}
}

func TestSyncErrors(t *testing.T) {
	m, _ := newManager(t)
	errs := m.Sync(context.Background(), []Spec{
		{Name: "Bad_Name", Command: testPlugin},
		{Name: "nocmd"},
		{Name: "missing", Command: filepath.Join(t.TempDir(), "nope")},
		{Name: "refuses", Command: testPlugin, Config: []byte(`{"mode":"badconfig"}`)},
		{Name: "twice", Command: testPlugin},
		{Name: "twice", Command: testPlugin},
	})
	var got []string
	for _, err := range errs {
		got = append(got, err.Error())
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{`plugin "Bad_Name": the name`, "plugin nocmd: command is required", "plugin missing: command", "plugin refuses: configure", "refusing this config on purpose", "plugin twice: listed twice"} {
		if !strings.Contains(all, want) {
			t.Errorf("errors lack %q:\n%s", want, all)
		}
	}
	// A plugin whose start failed exists and answers by its policy while it
	// keeps retrying.
	f, err := m.Filter("refuses", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp := serve(f.Middleware(upstream)); resp.StatusCode != 503 {
		t.Fatalf("a plugin that never started answered %d", resp.StatusCode)
	}
}

// TestCrashRestart: a plugin that dies mid-call is restarted within the
// backoff; calls meanwhile follow the failure policy.
func TestCrashRestart(t *testing.T) {
	m, logs := newManager(t)
	mustSync(t, m, Spec{Name: "crashy", Command: testPlugin})
	f, _ := m.Filter("crashy", nil, nil)
	h := f.Middleware(upstream)
	pid := m.PID("crashy")
	if resp := serve(h, "X-Plugin-Exit", "1"); resp.StatusCode != 503 && resp.StatusCode != 500 {
		t.Fatalf("the crashing call answered %d", resp.StatusCode)
	}
	waitUntil(t, 3*time.Second, "a new process", func() bool { p := m.PID("crashy"); return p != 0 && p != pid })
	if resp := serve(h); resp.StatusCode != 200 {
		t.Fatalf("after the restart: %d", resp.StatusCode)
	}
	if st, _ := m.Stats("crashy"); st.Restarts != 1 {
		t.Errorf("restarts = %d, want 1", st.Restarts)
	}
	if !strings.Contains(logs.String(), "plugin down; restarting") {
		t.Errorf("the restart is not logged")
	}
}

// TestBackoffGrows: a plugin that keeps failing to start is retried with
// growing waits, not in a tight loop.
func TestBackoffGrows(t *testing.T) {
	m, logs := newManager(t)
	m.Sync(context.Background(), []Spec{{Name: "refuses", Command: testPlugin, Config: []byte(`{"mode":"badconfig"}`)}})
	waitUntil(t, 10*time.Second, "four failed starts", func() bool {
		return strings.Count(logs.String(), "plugin failed to start") >= 4
	})
	for _, want := range []string{"retry_in=50ms", "retry_in=100ms", "retry_in=200ms", "retry_in=400ms"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s", want)
		}
	}
}

func TestChecksumReload(t *testing.T) {
	m, _ := newManager(t)
	bin := filepath.Join(t.TempDir(), "plugin")
	if err := os.WriteFile(bin, mustRead(t, testPlugin), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := Spec{Name: "p", Command: bin}
	mustSync(t, m, spec)
	f, _ := m.Filter("p", nil, nil)
	h := f.Middleware(upstream)
	pid := m.PID("p")

	mustSync(t, m, spec) // unchanged: same process
	if got := m.PID("p"); got != pid {
		t.Fatalf("an unchanged plugin was restarted: pid %d → %d", pid, got)
	}
	// Trailing bytes change the checksum, not the program.
	b := append(mustRead(t, testPlugin), []byte("v2")...)
	tmp := bin + ".new"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, bin); err != nil {
		t.Fatal(err)
	}
	mustSync(t, m, spec)
	next := m.PID("p")
	if next == 0 || next == pid {
		t.Fatalf("a changed binary was not restarted: pid %d → %d", pid, next)
	}
	if resp := serve(h); resp.StatusCode != 200 {
		t.Fatalf("the route filter does not follow the new process: %d", resp.StatusCode)
	}
	waitUntil(t, 5*time.Second, "the old process to end", func() bool { return !alive(pid) })

	// A config change restarts too.
	spec.Env = []string{"X=1"}
	mustSync(t, m, spec)
	if got := m.PID("p"); got == next {
		t.Fatalf("a changed spec was not restarted")
	}
}

// TestProcessTree: closing the manager kills the plugin and the children it
// started.
func TestProcessTree(t *testing.T) {
	m, logs := newManager(t)
	mustSync(t, m, Spec{Name: "parent", Command: testPlugin, Config: []byte(`{"mode":"child"}`)})
	pid := m.PID("parent")
	var kids []int
	waitUntil(t, 5*time.Second, "the plugin's child", func() bool { kids = children(t, pid); return len(kids) == 1 })
	// The plugin's stderr reaches the log asynchronously: the child can
	// be seen before its line arrives.
	waitUntil(t, 5*time.Second, "the plugin's log line", func() bool { return strings.Contains(logs.String(), "child started") })
	m.Close()
	waitUntil(t, 5*time.Second, "plugin and child to end", func() bool { return !alive(pid) && !alive(kids[0]) })
	if got := children(t, os.Getpid()); len(got) != 0 {
		t.Errorf("child processes left after Close: %v", got)
	}
	m.Close() // idempotent
	if errs := m.Sync(context.Background(), nil); len(errs) != 1 {
		t.Errorf("Sync after Close = %v, want an error", errs)
	}
}

func TestMaxConcurrent(t *testing.T) {
	m, _ := newManager(t)
	mustSync(t, m, Spec{Name: "one", Command: testPlugin, MaxConcurrent: 1, Timeout: 400 * time.Millisecond})
	f, _ := m.Filter("one", nil, nil)
	h := f.Middleware(upstream)
	started := make(chan struct{})
	done := make(chan int)
	go func() {
		close(started)
		done <- serve(h, "X-Plugin-Hang", "1").StatusCode
	}()
	<-started
	waitUntil(t, 2*time.Second, "the hanging call to hold the slot", func() bool {
		p := f.slot.cur.Load()
		return len(p.sem) == 1
	})
	// A call that finds no free slot before its deadline is unavailable
	// and never reaches the plugin or the upstream.
	var reached atomic.Bool
	hf := f.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached.Store(true) }))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	rec := httptest.NewRecorder()
	hf.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil).WithContext(ctx))
	if st, _ := m.Stats("one"); st.Unavailable != 1 || reached.Load() {
		t.Errorf("a call past max_concurrent: unavailable %d, upstream reached %v", st.Unavailable, reached.Load())
	}
	if code := <-done; code != 500 {
		t.Errorf("the hanging call answered %d, want 500", code)
	}
	if resp := serve(h); resp.StatusCode != 200 {
		t.Errorf("after the slot freed: %d", resp.StatusCode)
	}
}

// TestHammer: many goroutines call a plugin while it is killed and
// restarted; every answer is a success or the policy's, and nothing leaks.
func TestHammer(t *testing.T) {
	before := runtime.NumGoroutine()
	m, _ := newManager(t)
	mustSync(t, m, Spec{Name: "h", Command: testPlugin, Fail: FailOpen}, Spec{Name: "c", Command: testPlugin})
	fo, _ := m.Filter("h", nil, nil)
	fc, _ := m.Filter("c", nil, nil)
	open, closed := fo.Middleware(upstream), fc.Middleware(upstream)
	var bad atomic.Int64
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				if g == 0 && i%10 == 5 {
					serve(closed, "X-Plugin-Exit", "1") // crash it now and then
					continue
				}
				if code := serve(open).StatusCode; code != 200 {
					bad.Add(1)
				}
				if code := serve(closed).StatusCode; code != 200 && code != 503 && code != 500 {
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Errorf("%d wrong answers", bad.Load())
	}
	m.Close()
	if got := children(t, os.Getpid()); len(got) != 0 {
		t.Errorf("child processes left: %v", got)
	}
	waitUntil(t, 5*time.Second, "goroutines to settle", func() bool { return runtime.NumGoroutine() <= before+2 })
}

func TestParseFailPolicy(t *testing.T) {
	for in, want := range map[string]FailPolicy{"": FailClosed, "closed": FailClosed, "open": FailOpen} {
		if got, err := ParseFailPolicy(in); err != nil || got != want {
			t.Errorf("ParseFailPolicy(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseFailPolicy("shut"); err == nil || !errors.Is(err, err) || !strings.Contains(err.Error(), `"shut"`) {
		t.Errorf("ParseFailPolicy(shut) = %v", err)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var _ http.Handler = (*handler)(nil)

// TestBadUpgradeKeepsOld: a new version that cannot start does not replace
// the running one.
func TestBadUpgradeKeepsOld(t *testing.T) {
	m, _ := newManager(t)
	mustSync(t, m, Spec{Name: "p", Command: testPlugin})
	pid := m.PID("p")
	errs := m.Sync(context.Background(), []Spec{{Name: "p", Command: testPlugin, Config: []byte(`{"mode":"badconfig"}`)}})
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "the previous one keeps serving") {
		t.Fatalf("Sync = %v", errs)
	}
	if got := m.PID("p"); got != pid {
		t.Fatalf("the running plugin was replaced: %d → %d", pid, got)
	}
	f, _ := m.Filter("p", nil, nil)
	if resp := serve(f.Middleware(upstream)); resp.StatusCode != 200 {
		t.Fatalf("the kept plugin answered %d", resp.StatusCode)
	}
}

// TestSweepStaleSockets: the socket folders of a gateway that is gone are
// removed on the first Sync; those of live processes are kept.
func TestSweepStaleSockets(t *testing.T) {
	dir := t.TempDir()
	// A pid that is surely free: above the kernel's pid_max.
	stale := filepath.Join(dir, fmt.Sprintf("%s%d-123", socketPrefix, 1<<23))
	live := filepath.Join(dir, fmt.Sprintf("%s%d-456", socketPrefix, os.Getppid()))
	other := filepath.Join(dir, "unrelated")
	for _, d := range []string{stale, live, other} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	m := NewManager(Options{SocketDir: dir})
	defer m.Close()
	m.Sync(context.Background(), nil)
	for d, want := range map[string]bool{stale: false, live: true, other: true} {
		if _, err := os.Stat(d); (err == nil) != want {
			t.Errorf("%s exists = %v, want %v", filepath.Base(d), err == nil, want)
		}
	}
}

// TestServesRightAfterSync: Sync returns only once a started plugin
// serves, so the first request after it succeeds (this raced once).
func TestServesRightAfterSync(t *testing.T) {
	for i := range 5 {
		m, _ := newManager(t)
		mustSync(t, m, Spec{Name: "p", Command: testPlugin})
		f, _ := m.Filter("p", nil, nil)
		if resp := serve(f.Middleware(upstream)); resp.StatusCode != 200 {
			t.Fatalf("round %d: the first request after Sync answered %d", i, resp.StatusCode)
		}
		m.Close()
	}
}

// TestHealthCheckRestartsStuck: a process that is alive but does not
// answer (SIGSTOP) fails its health ping and is replaced.
func TestHealthCheckRestartsStuck(t *testing.T) {
	logs := &syncBuffer{}
	m := NewManager(Options{
		Logger:         slog.New(slog.NewTextHandler(logs, nil)),
		HealthInterval: 300 * time.Millisecond,
		BackoffMin:     50 * time.Millisecond,
		SocketDir:      t.TempDir(),
	})
	defer m.Close()
	mustSync(t, m, Spec{Name: "stuck", Command: testPlugin})
	pid := m.PID("stuck")
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 15*time.Second, "a new process", func() bool { p := m.PID("stuck"); return p != 0 && p != pid })
	waitUntil(t, 5*time.Second, "the stopped process to be killed", func() bool { return !alive(pid) })
	if !strings.Contains(logs.String(), "health check failed") {
		t.Errorf("the reason is not logged:\n%s", logs.String())
	}
}

// TestCloseStuck: Close returns even when a plugin is alive but frozen
// (go-plugin's graceful kill alone would wait for it for ever).
func TestCloseStuck(t *testing.T) {
	m := NewManager(Options{HealthInterval: time.Hour, SocketDir: t.TempDir()})
	mustSync(t, m, Spec{Name: "frozen", Command: testPlugin})
	pid := m.PID("frozen")
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		m.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatal("Close did not return with a frozen plugin")
	}
	if alive(pid) {
		t.Errorf("the frozen plugin (%d) survived Close", pid)
	}
}

// TestReloadUnderLoad: restarts for config changes under steady load lose
// no request, even with the closed policy: the successor starts first, the
// old process finishes its calls, and a call that picked the old process
// just before it was killed is retried on the new one.
func TestReloadUnderLoad(t *testing.T) {
	m, _ := newManager(t)
	spec := Spec{Name: "p", Command: testPlugin}
	mustSync(t, m, spec)
	f, _ := m.Filter("p", nil, nil)
	h := f.Middleware(upstream)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var ok, bad atomic.Int64
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if resp := serve(h); resp.StatusCode == 200 && resp.Header.Get("X-Plugin-Response") == "p" {
					ok.Add(1)
				} else {
					bad.Add(1)
				}
			}
		}()
	}
	pids := map[int]bool{m.PID("p"): true}
	for i := range 5 {
		spec.Env = []string{fmt.Sprintf("ROUND=%d", i)}
		mustSync(t, m, spec)
		pids[m.PID("p")] = true
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if len(pids) != 6 {
		t.Errorf("%d distinct processes, want 6 (one per config)", len(pids))
	}
	if bad.Load() != 0 || ok.Load() == 0 {
		t.Errorf("%d requests failed across the reloads (%d succeeded)", bad.Load(), ok.Load())
	}
}

// TestRetryOnSuccessor: a call that picked a plugin which has since been
// replaced and stopped is retried on the successor.
func TestRetryOnSuccessor(t *testing.T) {
	m, _ := newManager(t)
	mustSync(t, m, Spec{Name: "p", Command: testPlugin})
	f, _ := m.Filter("p", nil, nil)
	old := f.slot.cur.Load()
	mustSync(t, m, Spec{Name: "p", Command: testPlugin, Env: []string{"V=2"}})
	waitUntil(t, 10*time.Second, "the old process to stop", func() bool { return old.proc.Load() == nil })
	got, err := f.call(context.Background(), old, "request", func(ctx context.Context, pf Filter) error {
		_, err := pf.HandleRequest(ctx, &Request{Method: "GET", URI: "/", Header: http.Header{}})
		return err
	})
	if err != nil || got != f.slot.cur.Load() || got == old {
		t.Fatalf("call on a replaced plugin: %v (answered by the successor: %v)", err, got == f.slot.cur.Load())
	}
}
