package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicegw/sluice/internal/testcert"
	"github.com/sluicegw/sluice/wasm/tck"
)

// guest returns the absolute path of a test guest in wasm/testdata.
func guest(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(repoRoot(t), "wasm", "testdata", name+".wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("test guest %s: %v", name, err)
	}
	return p
}

// filtersAnnotation renders a sluice.io/filters annotation value.
func filtersAnnotation(entries ...string) string {
	var b strings.Builder
	b.WriteString("    sluice.io/filters: |\n")
	for _, e := range entries {
		for i, line := range strings.Split(strings.TrimSpace(e), "\n") {
			if i == 0 {
				b.WriteString("      - " + line + "\n")
			} else {
				b.WriteString("        " + line + "\n")
			}
		}
	}
	return b.String()
}

// filteredIngress is an Ingress for host whose only route, "/", goes to
// service svc through the given filters.
func filteredIngress(name, host, svc string, entries ...string) string {
	hostLine := ""
	if host != "" {
		hostLine = "host: " + host + "\n    "
	}
	return fmt.Sprintf(`apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: %s
  namespace: default
  creationTimestamp: "2026-01-01T00:00:00Z"
  annotations:
%sspec:
  ingressClassName: sluice
  rules:
  - %shttp:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: %s, port: {number: 80}}}}
`, name, filtersAnnotation(entries...), hostLine, svc)
}

// TestTCKThroughGateway runs the http-wasm conformance kit against the real
// gateway process, over HTTP/1.1 and over HTTP/2 with TLS.
func TestTCKThroughGateway(t *testing.T) {
	tckWasm, err := filepath.Abs(filepath.Join(repoRoot(t), "..", "shared", "tck", "http-wasm-tck.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tckWasm); err != nil {
		t.Fatalf("the http-wasm TCK guest is missing (%v): it is read from ../shared/tck/ beside the checkout, which CI provides", err)
	}
	echo := startBackend(t, "echo", tck.EchoHandler())
	leaf, err := testcert.Leaf(nil, []string{"tck.test", "127.0.0.1"}, testcert.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "all.yaml"), classYAML+"---\n"+service("echo", echo)+"---\n"+
		filteredIngress("tck", "", "echo", "name: tck\nmodule: file://"+tckWasm)+
		"  tls: [{hosts: [tck.test], secretName: tck}]\n"+`---
apiVersion: v1
kind: Secret
metadata: {name: tck, namespace: default}
type: kubernetes.io/tls
data:
  tls.crt: `+base64.StdEncoding.EncodeToString(leaf.CertPEM)+`
  tls.key: `+base64.StdEncoding.EncodeToString(leaf.KeyPEM)+"\n")
	g := startGateway(t, "--manifests", dir)
	if strings.Contains(g.Log(), "invalid object") {
		t.Fatalf("the TCK manifests produced warnings:\n%s", g.Log())
	}

	t.Run("HTTP/1.1", func(t *testing.T) {
		tck.Run(t, "http://"+g.addr("http"), &http.Client{Timeout: 10 * time.Second})
	})
	t.Run("HTTP/2", func(t *testing.T) {
		roots := x509.NewCertPool()
		roots.AddCert(leaf.Cert)
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}
		client := &http.Client{Timeout: 10 * time.Second, Transport: tr}
		resp, err := client.Get("https://" + g.addr("https") + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.ProtoMajor != 2 {
			t.Fatalf("negotiated %s, want HTTP/2", resp.Proto)
		}
		tck.Run(t, "https://"+g.addr("https"), client)
	})
}

// TestFiltersThroughGateway: filter chains on routes of the real process,
// from annotations and from the config file, and every failure kept to its
// own route.
func TestFiltersThroughGateway(t *testing.T) {
	var upstreamHits atomic.Int64
	be := startBackend(t, "be", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstreamHits.Add(1)
		w.Header().Set("X-Seen-Header", r.Header.Get("X-Sluice-Test"))
		fmt.Fprintln(w, "be")
	}))
	noop := guest(t, "noop")
	sum := sha256.Sum256(mustRead(t, noop))
	noopSHA := hex.EncodeToString(sum[:])

	cfgFile := filepath.Join(t.TempDir(), "sluice.yaml")
	writeFile(t, cfgFile, fmt.Sprintf(`wasm:
  timeout: 100ms
filters:
  named-deny:
    module: %s
  looper:
    module: %s
    timeout: 50ms
`, guest(t, "deny"), guest(t, "loop")))

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "base.yaml"), classYAML+"---\n"+service("be", be))
	writeFile(t, filepath.Join(dir, "plain.yaml"), ingress("plain", `  rules:
  - host: plain.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: be, port: {number: 80}}}}
`))
	writeFile(t, filepath.Join(dir, "noop.yaml"), filteredIngress("noop", "noop.test", "be", "name: noop\nmodule: file://"+noop+"\nsha256: "+noopSHA))
	writeFile(t, filepath.Join(dir, "deny.yaml"), filteredIngress("deny", "deny.test", "be", "name: named-deny"))
	writeFile(t, filepath.Join(dir, "loop.yaml"), filteredIngress("loop", "loop.test", "be", "name: looper"))
	writeFile(t, filepath.Join(dir, "trap.yaml"), filteredIngress("trap", "trap.test", "be", "name: trap\nmodule: file://"+guest(t, "trap")+"\nfail: open"))
	writeFile(t, filepath.Join(dir, "digest.yaml"), filteredIngress("digest", "digest.test", "be", "name: noop\nmodule: file://"+noop+"\nsha256: \""+strings.Repeat("0", 64)+"\""))
	writeFile(t, filepath.Join(dir, "noexp.yaml"), filteredIngress("noexp", "noexp.test", "be", "name: noexp\nmodule: file://"+guest(t, "noexports")))
	writeFile(t, filepath.Join(dir, "badann.yaml"), filteredIngress("badann", "badann.test", "be", "name: x\nmodule: ftp://nowhere/x.wasm"))

	g := startGateway(t, "--config", cfgFile, "--manifests", dir)
	client := &http.Client{Timeout: 10 * time.Second}
	ctx := context.Background()
	do := func(host string, hdr ...string) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+g.addr("http")+"/", nil)
		req.Host = host
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", host, err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 512)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return resp.StatusCode, b.String()
	}

	// Precise warnings for every bad filter, naming the Ingress and entry.
	g.waitLog(t, "Ingress default/digest", "sha256 mismatch")
	g.waitLog(t, "Ingress default/noexp", "noexp")
	g.waitLog(t, "Ingress default/badann", "ftp://nowhere/x.wasm")

	for _, tc := range []struct {
		host   string
		hdr    []string
		status int
		body   string
	}{
		{host: "plain.test", status: 200, body: "be"},
		{host: "noop.test", status: 200, body: "be"},
		{host: "deny.test", status: 403, body: "forbidden"},
		{host: "loop.test", status: 200, body: "be"},                               // loops only with x-loop
		{host: "loop.test", hdr: []string{"x-loop", "1"}, status: 500},             // cut at its 50 ms deadline, fail closed
		{host: "trap.test", hdr: []string{"x-trap", "1"}, status: 200, body: "be"}, // trap, fail open
		{host: "digest.test", status: 503, body: "could not be loaded"},
		{host: "noexp.test", status: 503, body: "could not be loaded"},
		{host: "badann.test", status: 503, body: "invalid"},
	} {
		status, body := do(tc.host, tc.hdr...)
		if status != tc.status || !strings.Contains(body, tc.body) {
			t.Errorf("GET %s %v = %d %q, want %d containing %q", tc.host, tc.hdr, status, body, tc.status, tc.body)
		}
	}
	before := upstreamHits.Load()
	if status, _ := do("deny.test"); status != 403 || upstreamHits.Load() != before {
		t.Errorf("an early answer reached the upstream")
	}
	g.waitLog(t, "filter failed", "looper", "deadline")

	// A looping filter does not disturb the others: loop and serve at once.
	var wg sync.WaitGroup
	var bad atomic.Int64
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			host, hdr, want := "plain.test", []string(nil), 200
			switch i % 3 {
			case 0:
				host, hdr, want = "loop.test", []string{"x-loop", "1"}, 500
			case 1:
				host = "noop.test"
			}
			if status, _ := do(host, hdr...); status != want {
				bad.Add(1)
			}
		}()
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Errorf("%d requests got the wrong answer while filters looped", bad.Load())
	}

	// Swap a module: the noop route becomes a deny route on the next
	// snapshot, without a restart.
	replaceFile(t, filepath.Join(dir, "noop.yaml"), filteredIngress("noop", "noop.test", "be", "name: named-deny"))
	waitUntil(t, 3*time.Second, "the new filter chain", func() bool {
		status, _ := do("noop.test")
		return status == 403
	})
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
