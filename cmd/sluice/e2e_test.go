package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluicegw/sluice/internal/testcert"
)

const ingressV1 = `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: %s, namespace: default, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  ingressClassName: sluice
%s`

func ingress(name, spec string) string { return fmt.Sprintf(ingressV1, name, spec) }

const classYAML = `apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: sluice}
spec: {controller: sluice.io/ingress-controller}
`

func tlsSecret(t *testing.T, name string, hosts ...string) (string, *x509.CertPool) {
	t.Helper()
	p, err := testcert.Leaf(nil, hosts, testcert.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(p.Cert)
	return fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: %s, namespace: default}
type: kubernetes.io/tls
data:
  tls.crt: %s
  tls.key: %s
`, name, base64.StdEncoding.EncodeToString(p.CertPEM), base64.StdEncoding.EncodeToString(p.KeyPEM)), pool
}

// TestServeReloadUnderLoad is the end-to-end test of issue 2: a real
// gateway process, real backends, HTTP/1.1 and HTTP/2, and manifest edits
// under a load loop with zero failed requests.
func TestServeReloadUnderLoad(t *testing.T) {
	a := startBackend(t, "a", nil)
	b := startBackend(t, "b", nil)
	c := startBackend(t, "c", nil)
	dir := t.TempDir()
	secret, roots := tlsSecret(t, "shop-tls", "shop.test")
	writeFile(t, filepath.Join(dir, "class.yaml"), classYAML)
	writeFile(t, filepath.Join(dir, "secret.yaml"), secret)
	writeFile(t, filepath.Join(dir, "services.yaml"), service("svc-a", a)+"---\n"+service("svc-b", b)+"---\n"+service("svc-c", c))
	writeFile(t, filepath.Join(dir, "shop.yaml"), noRedirect(ingress("shop", `  tls: [{hosts: [shop.test], secretName: shop-tls}]
  rules:
  - host: shop.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: svc-a, port: {number: 80}}}}
      - {path: /cart, pathType: Exact, backend: {service: {name: svc-b, port: {name: http}}}}
  - host: "*.apps.test"
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: svc-c, port: {number: 80}}}}
`)))

	g := startGateway(t, "--manifests", dir)
	httpAddr := g.addr("http")
	client := &http.Client{Timeout: 5 * time.Second}
	ctx := context.Background()

	for _, tc := range []struct {
		host, path string
		status     int
		backend    string
	}{
		{"shop.test", "/", 200, "a"},
		{"shop.test", "/anything/deeper", 200, "a"},
		{"shop.test", "/cart", 200, "b"},
		{"shop.test", "/cart/", 200, "a"}, // Exact does not match a trailing slash
		{"SHOP.test:8080", "/cart", 200, "b"},
		{"x.apps.test", "/", 200, "c"},
		{"x.y.apps.test", "/", 404, ""}, // a wildcard covers one label only
		{"unknown.test", "/", 404, ""},
	} {
		status, be, _, err := get(ctx, client, "http://"+httpAddr, tc.host, tc.path)
		if err != nil || status != tc.status || be != tc.backend {
			t.Errorf("GET %s%s = %d from %q (%v), want %d from %q", tc.host, tc.path, status, be, err, tc.status, tc.backend)
		}
	}

	// HTTP/2 over TLS with the static certificate from the Secret.
	h2 := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots, ServerName: "shop.test"},
		ForceAttemptHTTP2: true,
	}}
	h2get := func() (*http.Response, error) {
		req, _ := http.NewRequest("GET", "https://"+g.addr("https")+"/cart", nil)
		req.Host = "shop.test"
		resp, err := h2.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}
	resp, err := h2get()
	if err != nil {
		t.Fatalf("HTTP/2 request: %v", err)
	}
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 || resp.Header.Get("X-Backend") != "b" {
		t.Fatalf("HTTP/2: proto %s status %d backend %q", resp.Proto, resp.StatusCode, resp.Header.Get("X-Backend"))
	}
	if got := resp.Header.Get("X-Seen-Proto"); got != "HTTP/1.1" {
		t.Errorf("backend saw %s, want HTTP/1.1 (h2c only when appProtocol says so)", got)
	}

	// Load loop: HTTP/1.1 and HTTP/2 clients hammer shop.test/cart while
	// the manifests change twice. Every request must succeed.
	var ok, failed atomic.Int64
	var sawC atomic.Bool
	var firstFailure atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				var status int
				var be string
				var err error
				if i%2 == 0 {
					status, be, _, err = get(ctx, client, "http://"+httpAddr, "shop.test", "/cart")
				} else {
					var resp *http.Response
					resp, err = h2get()
					if err == nil {
						status, be = resp.StatusCode, resp.Header.Get("X-Backend")
					}
				}
				if err != nil || status != 200 || (be != "b" && be != "c") {
					failed.Add(1)
					firstFailure.CompareAndSwap(nil, fmt.Sprintf("status %d backend %q err %v", status, be, err))
					continue
				}
				if be == "c" {
					sawC.Store(true)
				}
				ok.Add(1)
			}
		}()
	}

	time.Sleep(300 * time.Millisecond)
	// Edit 1: /cart moves to svc-c (rename-replace, as editors do).
	start := time.Now()
	replaceFile(t, filepath.Join(dir, "shop.yaml"), noRedirect(ingress("shop", `  tls: [{hosts: [shop.test], secretName: shop-tls}]
  rules:
  - host: shop.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: svc-a, port: {number: 80}}}}
      - {path: /cart, pathType: Exact, backend: {service: {name: svc-c, port: {name: http}}}}
`)))
	waitUntil(t, 3*time.Second, "the edit to take effect", sawC.Load)
	applied := time.Since(start)
	// Edit 2: a new Ingress file appears.
	writeFile(t, filepath.Join(dir, "blog.yaml"), ingress("blog", `  rules:
  - host: blog.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: svc-b, port: {number: 80}}}}
`))
	waitUntil(t, 3*time.Second, "the new Ingress", func() bool {
		status, be, _, _ := get(ctx, client, "http://"+httpAddr, "blog.test", "/")
		return status == 200 && be == "b"
	})
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()

	t.Logf("load loop: %d ok, %d failed; edit applied after %s", ok.Load(), failed.Load(), applied)
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d requests failed across the reloads; first: %v", n, firstFailure.Load())
	}
	if ok.Load() < 100 {
		t.Fatalf("only %d requests completed: the load loop did not load", ok.Load())
	}
	if applied > time.Second {
		t.Errorf("edit took %s to apply, want within 1s", applied)
	}
	// The old route is gone: *.apps.test was removed by edit 1.
	if status, _, _, _ := get(ctx, client, "http://"+httpAddr, "x.apps.test", "/"); status != 404 {
		t.Errorf("removed wildcard host still answers %d", status)
	}
}

// TestBadInputKeepsServing: every kind of bad input gets a message naming
// the object or key, and the good routes keep working.
func TestBadInputKeepsServing(t *testing.T) {
	a := startBackend(t, "a", nil)
	dir := t.TempDir()
	cfgDir := t.TempDir()
	cfgFile := filepath.Join(cfgDir, "sluice.yaml")
	writeFile(t, cfgFile, "upstream:\n  connect_timeout: 2s\n")
	writeFile(t, filepath.Join(dir, "class.yaml"), classYAML)
	writeFile(t, filepath.Join(dir, "services.yaml"), service("svc-a", a))
	writeFile(t, filepath.Join(dir, "good.yaml"), ingress("good", `  rules:
  - host: good.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: svc-a, port: {number: 80}}}}
`))
	g := startGateway(t, "--config", cfgFile, "--manifests", dir)
	client := &http.Client{Timeout: 5 * time.Second}
	ctx := context.Background()
	stillServing := func(t *testing.T) {
		t.Helper()
		if status, be, _, err := get(ctx, client, "http://"+g.addr("http"), "good.test", "/"); err != nil || status != 200 || be != "a" {
			t.Fatalf("good route broken: %d %q %v", status, be, err)
		}
	}

	t.Run("malformed yaml", func(t *testing.T) {
		writeFile(t, filepath.Join(dir, "broken.yaml"), "apiVersion: v1\nkind: Service\nmetadata: [unclosed\n")
		g.waitLog(t, "broken.yaml")
		stillServing(t)
	})
	t.Run("missing service", func(t *testing.T) {
		writeFile(t, filepath.Join(dir, "nosvc.yaml"), ingress("nosvc", `  rules:
  - host: nosvc.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: ghost, port: {number: 80}}}}
`))
		g.waitLog(t, "Ingress default/nosvc", "ghost")
		stillServing(t)
		status, _, body, err := get(ctx, client, "http://"+g.addr("http"), "nosvc.test", "/")
		if err != nil || status != 503 || !strings.Contains(body, "ghost") {
			t.Fatalf("route to a missing service: %d %q %v, want 503 naming the service", status, body, err)
		}
	})
	t.Run("invalid path", func(t *testing.T) {
		writeFile(t, filepath.Join(dir, "badpath.yaml"), ingress("badpath", `  rules:
  - host: badpath.test
    http:
      paths:
      - {path: "no-slash", pathType: Prefix, backend: {service: {name: svc-a, port: {number: 80}}}}
`))
		g.waitLog(t, "Ingress default/badpath", "no-slash")
		stillServing(t)
	})
	t.Run("bad config value", func(t *testing.T) {
		replaceFile(t, cfgFile, "upstream:\n  connect_timeout: soon\n")
		line := g.waitLog(t, "config reload rejected", "upstream.connect_timeout")
		if !strings.Contains(line, "soon") {
			t.Errorf("rejection does not show the bad value: %s", line)
		}
		stillServing(t)
	})
	t.Run("unknown config key", func(t *testing.T) {
		replaceFile(t, cfgFile, "upstream:\n  conect_timeout: 1s\n")
		g.waitLog(t, "config reload rejected", "upstream.conect_timeout")
		stillServing(t)
	})
	t.Run("good config after bad", func(t *testing.T) {
		replaceFile(t, cfgFile, "upstream:\n  connect_timeout: 1s\n")
		g.waitLog(t, "rebuilt", "config changed")
		stillServing(t)
	})
	t.Run("malformed request", func(t *testing.T) {
		for _, raw := range []string{
			"GET / HTTP/1.1\r\nHost: bad host\r\n\r\n",
			"GET / HTTP/1.1\r\nHost: good.test\r\nX-Big: " + strings.Repeat("a", 70<<10) + "\r\n\r\n",
			"GET /%zz HTTP/1.1\r\nHost: good.test\r\n\r\n",
			"GET / HTTP/1.1\r\nHost: good.test\r\nContent-Length: -1\r\n\r\n",
		} {
			conn, err := net.Dial("tcp", g.addr("http"))
			if err != nil {
				t.Fatal(err)
			}
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(conn, raw)
			line, _ := bufio.NewReader(conn).ReadString('\n')
			conn.Close()
			if !strings.HasPrefix(line, "HTTP/1.1 4") {
				t.Errorf("request %.40q: answered %q, want a 4xx", raw, line)
			}
		}
		stillServing(t)
	})
}

// TestGracefulShutdown: SIGTERM lets a request in flight finish.
func TestGracefulShutdown(t *testing.T) {
	started := make(chan struct{}, 1)
	slow := startBackend(t, "slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		time.Sleep(700 * time.Millisecond)
		fmt.Fprintln(w, "done")
	}))
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "all.yaml"), classYAML+"---\n"+service("slow", slow)+"---\n"+ingress("slow", `  rules:
  - http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: slow, port: {number: 80}}}}
`))
	g := startGateway(t, "--manifests", dir)
	type result struct {
		status int
		body   string
		err    error
	}
	res := make(chan result, 1)
	go func() {
		status, _, body, err := get(context.Background(), &http.Client{Timeout: 10 * time.Second}, "http://"+g.addr("http"), "any.test", "/")
		res <- result{status, body, err}
	}()
	select {
	case <-started:
	case r := <-res:
		t.Fatalf("request did not reach the slow backend: %d %q %v", r.status, r.body, r.err)
	}
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := <-res
	if r.err != nil || r.status != 200 || r.body != "done\n" {
		t.Fatalf("request in flight at SIGTERM: %d %q %v", r.status, r.body, r.err)
	}
	select {
	case <-g.done:
		if g.err != nil {
			t.Fatalf("exit after SIGTERM: %v", g.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("gateway did not exit within 10s of SIGTERM")
	}
}
