package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicegw/sluice/internal/testcert"
)

// binary is the sluice binary built once for the end-to-end tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "sluice")
	args := []string{"build", "-o", binary}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building sluice for the end-to-end tests:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// backend is a real HTTP server on loopback that names itself in every
// answer (header X-Backend and the body's first line).
type backend struct {
	name string
	addr string // 127.0.0.1:port
	port int
	srv  *http.Server
}

func startBackend(t *testing.T, name string, extra http.Handler) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{name: name, addr: ln.Addr().String(), port: ln.Addr().(*net.TCPAddr).Port}
	b.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", name)
		w.Header().Set("X-Seen-Path", r.URL.Path)
		w.Header().Set("X-Seen-Proto", r.Proto)
		if extra != nil {
			extra.ServeHTTP(w, r)
			return
		}
		fmt.Fprintf(w, "%s\n", name)
	})}
	go b.srv.Serve(ln)
	t.Cleanup(func() { b.srv.Close() })
	return b
}

// gateway is a running `sluice run` process.
type gateway struct {
	cmd   *exec.Cmd
	addrs map[string]string // listener name → address
	mu    sync.Mutex
	log   bytes.Buffer // every line the process logged
	done  chan struct{}
	err   error // the process's exit, valid after done
}

// startGateway runs sluice with args on loopback listeners it picks, and
// waits until /readyz says ready.
func startGateway(t *testing.T, args ...string) *gateway {
	t.Helper()
	all := append([]string{"run", "--http-addr", "127.0.0.1:0", "--https-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"}, args...)
	cmd := exec.Command(binary, all...)
	dieWithTest(cmd)
	// XDG_DATA_HOME: the default certificate storage (tls.storage unset)
	// is under it, so no test writes into the user's home.
	cmd.Env = append(os.Environ(), "SLUICE_LOG_FORMAT=json", "XDG_DATA_HOME="+t.TempDir())
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	g := &gateway{cmd: cmd, addrs: map[string]string{}, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		n := 0
		for sc.Scan() {
			line := sc.Text()
			g.mu.Lock()
			g.log.WriteString(line + "\n")
			var rec struct{ Msg, Listener, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" {
				g.addrs[rec.Listener] = rec.Addr
				if n++; n == 3 {
					close(listening)
				}
			}
			g.mu.Unlock()
		}
		g.err = cmd.Wait()
		close(g.done)
	}()
	t.Cleanup(func() {
		g.cmd.Process.Kill()
		<-g.done
		if t.Failed() {
			t.Logf("gateway log (access lines left out):\n%s", g.logTail(80))
		}
	})
	select {
	case <-listening:
	case <-g.done:
		t.Fatalf("gateway exited before listening: %v\n%s", g.err, g.Log())
	case <-time.After(30 * time.Second):
		t.Fatalf("gateway did not listen within 30s\n%s", g.Log())
	}
	waitUntil(t, 10*time.Second, "gateway ready", func() bool {
		resp, err := http.Get("http://" + g.addr("admin") + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return g
}

func (g *gateway) addr(name string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.addrs[name]
}

// Log returns what the process has logged so far.
func (g *gateway) Log() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.log.String()
}

// logTail returns the last n log lines that are not access-log lines.
func (g *gateway) logTail(n int) string {
	var keep []string
	for _, line := range strings.Split(g.Log(), "\n") {
		if !strings.Contains(line, `"msg":"access"`) {
			keep = append(keep, line)
		}
	}
	if len(keep) > n {
		keep = append([]string{fmt.Sprintf("… %d earlier lines", len(keep)-n)}, keep[len(keep)-n:]...)
	}
	return strings.Join(keep, "\n")
}

// waitLog waits until the log has a line containing every one of subs.
func (g *gateway) waitLog(t *testing.T, subs ...string) string {
	t.Helper()
	var found string
	waitUntil(t, 5*time.Second, fmt.Sprintf("a log line with %q", subs), func() bool {
		for _, line := range strings.Split(g.Log(), "\n") {
			ok := true
			for _, s := range subs {
				ok = ok && strings.Contains(line, s)
			}
			if ok {
				found = line
				return true
			}
		}
		return false
	})
	return found
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// get sends a GET for host+path to base ("http://127.0.0.1:port" or
// "https://…") and returns status, X-Backend and the body.
func get(ctx context.Context, c *http.Client, base, host, path string) (int, string, string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", base+path, nil)
	if err != nil {
		return 0, "", "", err
	}
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Backend"), string(body), err
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// replaceFile writes path atomically, as editors and kubectl-style tools do.
func replaceFile(t *testing.T, path, body string) {
	t.Helper()
	tmp := path + ".tmp"
	writeFile(t, tmp, body)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// service returns manifests for a Service "name" (port 80, named http)
// with one EndpointSlice listing the backends.
func service(name string, bs ...*backend) string {
	var out strings.Builder
	fmt.Fprintf(&out, `apiVersion: v1
kind: Service
metadata: {name: %s, namespace: default}
spec:
  ports: [{name: http, port: 80}]
`, name)
	// Every backend listens on its own port, so each gets its own slice.
	for i, b := range bs {
		fmt.Fprintf(&out, `---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: %s-%d
  namespace: default
  labels: {kubernetes.io/service-name: %s}
addressType: IPv4
ports: [{name: http, port: %d}]
endpoints:
  - addresses: ["127.0.0.1"]
    conditions: {ready: true}
`, name, i, name, b.port)
	}
	return out.String()
}

// syncWriter is a log destination safe for concurrent writes.
type syncWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// mtlsSite is a gateway serving id.test over TLS with client certificates
// verified against clientCA (mode: sluice.io/client-verify), whose only
// route, "/", goes to be through one filter (a sluice.io/filters entry).
type mtlsSite struct {
	g        *gateway
	clientCA *testcert.Pair
	roots    *x509.CertPool
}

func startMTLSSite(t *testing.T, be *backend, clientCA *testcert.Pair, mode, filterEntry string) *mtlsSite {
	t.Helper()
	secret, roots := tlsSecret(t, "id-tls", "id.test")
	cfgFile := filepath.Join(t.TempDir(), "sluice.yaml")
	writeFile(t, cfgFile, "wasm:\n  cache_dir: "+wazeroCache+"\n")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "base.yaml"), classYAML+"---\n"+service("web", be)+"---\n"+secret+`---
apiVersion: v1
kind: Secret
metadata: {name: client-ca, namespace: default}
data:
  ca.crt: `+base64.StdEncoding.EncodeToString(clientCA.CertPEM)+"\n")
	ing := filteredIngress("id", "id.test", "web", filterEntry)
	ing = strings.Replace(ing, "  annotations:\n", "  annotations:\n    sluice.io/client-verify: \""+mode+"\"\n    sluice.io/client-ca-secret: client-ca\n", 1)
	ing += "  tls: [{hosts: [id.test], secretName: id-tls}]\n"
	// The filter's route is added once the gateway listens: the first
	// snapshot is built before the listeners open, and a cold compile of
	// a guest in a -race gateway can take longer than startGateway waits.
	// Meanwhile the gateway serves; the route appears when its filter is
	// loaded.
	g := startGateway(t, "--config", cfgFile, "--manifests", dir)
	replaceFile(t, filepath.Join(dir, "id.yaml"), ing)
	return &mtlsSite{g: g, clientCA: clientCA, roots: roots}
}
