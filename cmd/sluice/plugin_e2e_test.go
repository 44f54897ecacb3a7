package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluicegw/sluice/plugins"
)

// pluginBinaries are built once per test run, beside the sluice binary
// (TestMain removes that folder).
var pluginBinaries sync.Map // package path → *builtPlugin

type builtPlugin struct {
	once sync.Once
	path string
	err  error
}

// pluginBinary builds the plugin main package pkg (relative to the repo
// root) once and returns its path.
func pluginBinary(t *testing.T, pkg string) string {
	t.Helper()
	v, _ := pluginBinaries.LoadOrStore(pkg, &builtPlugin{})
	b := v.(*builtPlugin)
	b.once.Do(func() {
		b.path = filepath.Join(filepath.Dir(binary), "plugin-"+filepath.Base(pkg))
		cmd := exec.Command("go", "build", "-o", b.path, "./"+pkg)
		cmd.Dir = repoRoot(t)
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("go build ./%s: %v\n%s", pkg, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// procChildren returns the live (not zombie) child processes of pid, by
// reading /proc.
func procChildren(t *testing.T, pid int) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("reading /proc (the plugin tests need Linux): %v", err)
	}
	var out []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 || f[0] == "Z" {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid == pid {
			out = append(out, n)
		}
	}
	return out
}

func procAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && !strings.HasPrefix(strings.TrimSpace(s[i+1:]), "Z")
}

// pluginPIDs maps the plugin processes of the gateway to their names, from
// the "plugin running" log lines, keeping only live children.
func pluginPIDs(t *testing.T, g *gateway) map[string]int {
	t.Helper()
	kids := map[int]bool{}
	for _, p := range procChildren(t, g.cmd.Process.Pid) {
		kids[p] = true
	}
	out := map[string]int{}
	for _, line := range strings.Split(g.Log(), "\n") {
		if !strings.Contains(line, `"msg":"plugin running"`) {
			continue
		}
		name := jsonField(line, "plugin")
		pid, _ := strconv.Atoi(jsonField(line, "pid"))
		if kids[pid] {
			out[name] = pid
		}
	}
	return out
}

// jsonField pulls a top-level string or number field out of one JSON log
// line, without a full decode.
func jsonField(line, key string) string {
	i := strings.Index(line, `"`+key+`":`)
	if i < 0 {
		return ""
	}
	v := line[i+len(key)+3:]
	if strings.HasPrefix(v, `"`) {
		v = v[1:]
		if j := strings.IndexByte(v, '"'); j >= 0 {
			return v[:j]
		}
		return v
	}
	if j := strings.IndexAny(v, ",}"); j >= 0 {
		return v[:j]
	}
	return v
}

// pluginGateway starts a gateway whose config declares the plugins in
// pluginsYAML and whose routes are host → plugin entries.
func pluginGateway(t *testing.T, pluginsYAML string, routes map[string]string) (*gateway, string, *backend) {
	t.Helper()
	be := startBackend(t, "be", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Upstream-Secret", "s3cret")
		w.Header().Set("X-Seen-Plugin", r.Header.Get("X-Plugin-Seen"))
		w.Header().Set("X-Seen-Remove-Me", r.Header.Get("X-Remove-Me"))
		w.Header().Set("X-Seen-Uri", r.URL.RequestURI())
		fmt.Fprintln(w, "be")
	}))
	cfgFile := filepath.Join(t.TempDir(), "sluice.yaml")
	writeFile(t, cfgFile, "plugins:\n"+pluginsYAML)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "base.yaml"), classYAML+"---\n"+service("be", be))
	for host, entry := range routes {
		name := strings.SplitN(host, ".", 2)[0]
		writeFile(t, filepath.Join(dir, name+".yaml"), filteredIngress(name, host, "be", entry))
	}
	g := startGateway(t, "--config", cfgFile, "--manifests", dir)
	if strings.Contains(g.Log(), "invalid object") {
		t.Fatalf("the manifests produced warnings:\n%s", g.Log())
	}
	return g, cfgFile, be
}

type answer struct {
	status int
	header http.Header
	body   string
}

func pluginGet(t *testing.T, g *gateway, host string, hdr ...string) answer {
	t.Helper()
	a, err := tryGet(g, host, hdr...)
	if err != nil {
		t.Fatalf("GET %s: %v", host, err)
	}
	return a
}

func tryGet(g *gateway, host string, hdr ...string) (answer, error) {
	req, err := http.NewRequestWithContext(context.Background(), "GET", "http://"+g.addr("http")+"/a?b=1", nil)
	if err != nil {
		return answer{}, err
	}
	req.Host = host
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := pluginClient.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return answer{resp.StatusCode, resp.Header, b.String()}, nil
}

var pluginClient = &http.Client{Timeout: 20 * time.Second}

// TestPluginsThroughGateway: allow, deny with a custom body, header
// rewrites both ways, per-call timeout of a hanging plugin, and the
// plugin's log lines in the gateway log, through the real process and
// real plugin subprocesses.
func TestPluginsThroughGateway(t *testing.T) {
	tp := pluginBinary(t, "plugins/internal/testplugin")
	t.Setenv("TMPDIR", t.TempDir()) // the plugins' socket folders
	g, _, _ := pluginGateway(t, fmt.Sprintf(`  tp:
    command: %s
    timeout: 1s
  tp-open:
    command: %s
    fail: open
    timeout: 1s
`, tp, tp), map[string]string{
		"closed.test":   "name: tp",
		"open.test":     "name: tp-open",
		"override.test": "name: tp\nfail: open",
	})
	g.waitLog(t, `"msg":"configured"`, `"plugin":"tp"`)

	for _, tc := range []struct {
		name, host string
		hdr        []string
		status     int
		body       string
		header     map[string]string
	}{
		{name: "allow with header rewrites", host: "closed.test", hdr: []string{"X-Remove-Me", "1"}, status: 200, body: "be", header: map[string]string{
			"X-Seen-Plugin": "tp", "X-Seen-Remove-Me": "", "X-Plugin-Response": "tp", "X-Plugin-Status": "200", "X-Upstream-Secret": "", "X-Backend": "be",
		}},
		{name: "uri rewrite", host: "closed.test", hdr: []string{"X-Plugin-Rewrite", "/rewritten?x=1"}, status: 200, header: map[string]string{"X-Seen-Uri": "/rewritten?x=1"}},
		{name: "deny with a custom body", host: "closed.test", hdr: []string{"X-Plugin-Deny", "451"}, status: 451, body: "denied by tp\n", header: map[string]string{"X-Denied-By": "tp", "X-Backend": ""}},
		{name: "hang: per-call timeout, closed", host: "closed.test", hdr: []string{"X-Plugin-Hang", "1"}, status: 500, body: "sluice: filter failed tp"},
		{name: "hang: per-call timeout, open", host: "open.test", hdr: []string{"X-Plugin-Hang", "1"}, status: 200, body: "be", header: map[string]string{"X-Seen-Plugin": ""}},
		{name: "error, closed", host: "closed.test", hdr: []string{"X-Plugin-Error", "1"}, status: 500},
		{name: "error, route overrides to open", host: "override.test", hdr: []string{"X-Plugin-Error", "1"}, status: 200, body: "be"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := pluginGet(t, g, tc.host, tc.hdr...)
			if a.status != tc.status || !strings.Contains(a.body, tc.body) {
				t.Fatalf("got %d %q, want %d containing %q", a.status, a.body, tc.status, tc.body)
			}
			for k, v := range tc.header {
				if got := a.header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
		})
	}
	g.waitLog(t, `"msg":"plugin call failed"`, `"plugin":"tp"`, "no answer within 1s")
}

// TestPluginCrashThroughGateway: plugins killed with SIGKILL under load.
// Requests follow each plugin's failure policy, the plugin is back within
// the backoff, the gateway does not crash, and neither processes nor
// goroutines leak.
func TestPluginCrashThroughGateway(t *testing.T) {
	tp := pluginBinary(t, "plugins/internal/testplugin")
	pluginsYAML := fmt.Sprintf(`  closed:
    command: %s
  open:
    command: %s
    fail: open
`, tp, tp)
	routes := map[string]string{"closed.test": "name: closed", "open.test": "name: open"}
	tmp := t.TempDir() // the gateway's TMPDIR: where plugin sockets live
	t.Setenv("TMPDIR", tmp)
	g, _, _ := pluginGateway(t, pluginsYAML, routes)
	pids := pluginPIDs(t, g)
	if len(pids) != 2 {
		t.Fatalf("plugin processes %v, want closed and open", pids)
	}

	// Load on both routes while the plugins are killed, five times each.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var openBad, closedBad, closedFailed, errs atomic.Int64
	var badMu sync.Mutex
	var bad []string
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			host := "open.test"
			if i%2 == 1 {
				host = "closed.test"
			}
			for {
				select {
				case <-stop:
					return
				default:
				}
				a, err := tryGet(g, host)
				if err != nil {
					errs.Add(1)
					continue
				}
				switch {
				case host == "open.test" && a.status != 200:
					openBad.Add(1)
				case host == "closed.test" && (a.status == 503 || a.status == 500):
					closedFailed.Add(1)
				case host == "closed.test" && a.status != 200:
					closedBad.Add(1)
				default:
					continue
				}
				if a.status != 503 && a.status != 500 || host == "open.test" {
					badMu.Lock()
					bad = append(bad, fmt.Sprintf("%s %d %q", host, a.status, a.body))
					badMu.Unlock()
				}
			}
		}()
	}
	for round := range 5 {
		time.Sleep(150 * time.Millisecond)
		for name, pid := range pids {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatalf("kill %s (%d): %v", name, pid, err)
			}
		}
		// Back within the backoff: 100ms doubling per quick crash, so
		// well under 5 s after five rounds.
		old := pids
		waitUntil(t, 10*time.Second, fmt.Sprintf("round %d: both plugins restarted", round), func() bool {
			pids = pluginPIDs(t, g)
			return len(pids) == 2 && pids["closed"] != old["closed"] && pids["open"] != old["open"]
		})
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()

	select {
	case <-g.done:
		t.Fatalf("the gateway exited: %v", g.err)
	default:
	}
	if errs.Load() != 0 || openBad.Load() != 0 || closedBad.Load() != 0 {
		t.Errorf("transport errors %d, open route non-200 %d, closed route wrong answers %d: %v", errs.Load(), openBad.Load(), closedBad.Load(), bad)
	}
	t.Logf("closed route answered 5xx by its policy %d times", closedFailed.Load())
	if a := pluginGet(t, g, "closed.test"); a.status != 200 || a.header.Get("X-Seen-Plugin") != "closed" {
		t.Errorf("after the restarts: %d %q", a.status, a.header.Get("X-Seen-Plugin"))
	}
	g.waitLog(t, `"msg":"plugin down; restarting"`, `"plugin":"closed"`)

	// No process leak: the gateway's children are the two plugins; and
	// the socket folders of the killed processes are gone.
	if kids := procChildren(t, g.cmd.Process.Pid); len(kids) != 2 {
		t.Errorf("the gateway has %d child processes, want 2: %v", len(kids), kids)
	}
	if socks, _ := filepath.Glob(filepath.Join(tmp, "sluice-plugin-*")); len(socks) != 2 {
		t.Errorf("%d plugin socket folders, want 2 (one per live plugin): %v", len(socks), socks)
	}

	// No goroutine leak: the plugin goroutines of the crashed gateway are
	// as many as in a fresh one that ran the same plugins without a crash.
	crashed := pluginGoroutines(t, g)
	fresh, _, _ := pluginGateway(t, pluginsYAML, routes)
	pluginGet(t, fresh, "closed.test")
	pluginGet(t, fresh, "open.test")
	baseline := pluginGoroutines(t, fresh)
	if crashed > baseline+4 {
		t.Errorf("plugin goroutines after 5 crashes: %d, in a fresh gateway: %d", crashed, baseline)
	}
	t.Logf("plugin goroutines: %d after crashes, %d fresh", crashed, baseline)
}

// pluginGoroutines makes g dump its goroutines (SIGQUIT, which ends it)
// and counts those in plugin, go-plugin, gRPC or yamux code.
func pluginGoroutines(t *testing.T, g *gateway) int {
	t.Helper()
	if err := g.cmd.Process.Signal(syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.done:
	case <-time.After(20 * time.Second):
		t.Fatal("the gateway did not exit on SIGQUIT")
	}
	dump := g.Log()
	i := strings.Index(dump, "SIGQUIT")
	if i < 0 {
		t.Fatalf("no goroutine dump in the log")
	}
	n := 0
	for _, gr := range strings.Split(dump[i:], "\n\ngoroutine ")[1:] {
		if strings.Contains(gr, "sluice/plugins") || strings.Contains(gr, "hashicorp/go-plugin") ||
			strings.Contains(gr, "google.golang.org/grpc") || strings.Contains(gr, "hashicorp/yamux") {
			n++
		}
	}
	if n == 0 {
		t.Fatalf("no plugin goroutine in the dump: the count would prove nothing")
	}
	return n
}

// TestPluginLifecycleThroughGateway: a changed binary is restarted on
// reload, a removed plugin is killed, and shutdown kills them all.
func TestPluginLifecycleThroughGateway(t *testing.T) {
	tp := pluginBinary(t, "plugins/internal/testplugin")
	bin := filepath.Join(t.TempDir(), "tp")
	writeFile(t, bin, string(mustRead(t, tp)))
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	two := fmt.Sprintf("  a:\n    command: %s\n  b:\n    command: %s\n", bin, tp)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	g, cfgFile, _ := pluginGateway(t, two, map[string]string{"a.test": "name: a"})
	pids := pluginPIDs(t, g)
	if len(pids) != 2 {
		t.Fatalf("plugin processes %v, want a and b", pids)
	}

	// New binary for a (trailing bytes change the checksum only), then a
	// config edit: a restarts, b does not.
	replaceFile(t, bin, string(mustRead(t, tp))+"v2")
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	replaceFile(t, cfgFile, "log:\n  level: info\nplugins:\n"+two)
	g.waitLog(t, `"msg":"plugin starting"`, `"plugin":"a"`, `"reason":"binary changed"`)
	waitUntil(t, 10*time.Second, "a restarted", func() bool {
		now := pluginPIDs(t, g)
		return now["a"] != 0 && now["a"] != pids["a"] && !procAlive(pids["a"])
	})
	if now := pluginPIDs(t, g); now["b"] != pids["b"] {
		t.Errorf("b was restarted though nothing of it changed: %d → %d", pids["b"], now["b"])
	}
	if a := pluginGet(t, g, "a.test"); a.status != 200 || a.header.Get("X-Seen-Plugin") != "a" {
		t.Errorf("a.test after the binary change: %d", a.status)
	}

	// Remove b from the config: its process is killed.
	replaceFile(t, cfgFile, fmt.Sprintf("plugins:\n  a:\n    command: %s\n", bin))
	waitUntil(t, 10*time.Second, "b killed", func() bool { return !procAlive(pids["b"]) })
	now := pluginPIDs(t, g)

	// Shutdown kills what is left.
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the gateway did not stop on SIGTERM")
	}
	if g.err != nil {
		t.Errorf("the gateway exited with %v", g.err)
	}
	if procAlive(now["a"]) {
		t.Errorf("plugin a (%d) outlived the gateway", now["a"])
	}
	if socks, _ := filepath.Glob(filepath.Join(tmp, "sluice-plugin-*")); len(socks) != 0 {
		t.Errorf("socket folders left after shutdown: %v", socks)
	}
}

// TestPluginNew scaffolds a plugin, builds it against this checkout, runs
// its generated test, and serves a request through it with a real plugin
// manager.
func TestPluginNew(t *testing.T) {
	root := repoRoot(t)
	dir := filepath.Join(t.TempDir(), "hello")
	var out, errOut strings.Builder
	if code := run([]string{"plugin", "new", "hello", dir, "--sluice-path", root}, &out, &errOut); code != 0 {
		t.Fatalf("plugin new = %d: %s", code, errOut.String())
	}
	for _, f := range []string{"main.go", "main_test.go", "go.mod", "README.md"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"plugin", "new", "hello", dir}, "is not empty"},
		{[]string{"plugin", "new", "Bad_Name", t.TempDir()}, `plugin name "Bad_Name"`},
		{[]string{"plugin", "new", "x", filepath.Join(t.TempDir(), "x"), "--sluice-path", t.TempDir()}, "not a Sluice checkout"},
		{[]string{"plugin", "old"}, "Usage:"},
	} {
		errOut.Reset()
		if code := run(tc.args, &out, &errOut); code == 0 || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%v = %d %q, want an error containing %q", tc.args, code, errOut.String(), tc.want)
		}
	}

	bin := filepath.Join(dir, "hello")
	for _, args := range [][]string{{"mod", "tidy"}, {"test", "./..."}, {"build", "-o", bin, "."}} {
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %v in the new plugin: %v\n%s", args, err, b)
		}
	}
	var logs syncWriter
	m := plugins.NewManager(plugins.Options{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	defer func() {
		m.Close()
		if t.Failed() {
			t.Logf("plugin manager log:\n%s", logs.String())
		}
	}()
	if errs := m.Sync(context.Background(), []plugins.Spec{{Name: "hello", Command: bin}}); len(errs) > 0 {
		t.Fatal(errs)
	}
	f, err := m.Filter("hello", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var seen string
	h := f.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = r.Header.Get("X-Hello") }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 200 || seen != "1" {
		t.Errorf("through the new plugin: %d, X-Hello %q", rec.Code, seen)
	}
	rec = httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("X-Block", "1")
	h.ServeHTTP(rec, req)
	if rec.Code != 403 || !strings.Contains(rec.Body.String(), "blocked by hello") {
		t.Errorf("blocked request: %d %q", rec.Code, rec.Body.String())
	}
}
