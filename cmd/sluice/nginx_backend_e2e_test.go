package main

import (
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicegw/sluice/internal/testcert"
)

// nginxIngress is an Ingress for host routing "/" to Service svc, with
// the annotations given as "key: value" lines.
func nginxIngress(name, host, svc string, annotations ...string) string {
	return routingIngress(name, annotations, fmt.Sprintf(`  - host: %s
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: %s, port: {number: 80}}}}
`, host, svc))
}

// startTLSBackend serves h over TLS on loopback (HTTP/2 too when h2).
func startTLSBackend(t *testing.T, h2 bool, h http.Handler) *backend {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = h2
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &backend{addr: srv.Listener.Addr().String(), port: srv.Listener.Addr().(*net.TCPAddr).Port}
}

// nginxDo sends method to host "/" through the gateway's HTTP listener.
// length -1 sends body chunked.
func nginxDo(t *testing.T, g *gateway, method, host string, body io.Reader, length int64) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+g.addr("http")+"/", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	if body != nil {
		req.ContentLength = length
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, host, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, host, err)
	}
	return resp, string(b)
}

// TestNginxBackendAnnotationsThroughGateway runs the ingress-nginx backend
// annotations through the real gateway in standalone mode:
// backend-protocol HTTPS and GRPCS to real TLS backends, proxy-body-size
// (413 for declared and chunked bodies), source ranges (403, deny wins),
// proxy-read-timeout (504), limit-rps and sluice.io/rate-limit (429 after
// the burst, the backend never sees more than the limit, each Ingress has
// its own buckets), proxy-ssl-verify, a warning for an unsupported value
// and 503 for an invalid source range.
func TestNginxBackendAnnotationsThroughGateway(t *testing.T) {
	var plainSeen, limitedSeen, bigBodies atomic.Int64
	plain := startBackend(t, "plain", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		plainSeen.Add(1)
		n, err := io.Copy(io.Discard, r.Body)
		if err == nil && n > 1024 {
			bigBodies.Add(1)
		}
		if r.Header.Get("X-Sleep") != "" {
			time.Sleep(2 * time.Second)
		}
		fmt.Fprintf(w, "plain %d\n", n)
	}))
	limited := startBackend(t, "limited", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limitedSeen.Add(1)
		io.WriteString(w, "limited\n")
	}))
	tls1 := startTLSBackend(t, false, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "tls %s %v\n", r.Proto, r.TLS != nil)
	}))
	grpcs := startTLSBackend(t, true, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 || r.TLS == nil {
			http.Error(w, "want HTTP/2 over TLS", http.StatusHTTPVersionNotSupported)
			return
		}
		w.Header().Set("Trailer", "Grpc-Status")
		w.Header().Set("Content-Type", "application/grpc")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		io.Copy(w, r.Body)
		w.Header().Set("Grpc-Status", "0")
	}))

	// A backend whose certificate a private CA issued for web.default.svc.
	ca, err := testcert.CA("backend ca")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := testcert.Leaf(ca, []string{"web.default.svc"}, testcert.Options{})
	if err != nil {
		t.Fatal(err)
	}
	verifiedSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "verified sni=%s\n", r.TLS.ServerName)
	}))
	verifiedSrv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf.TLSCertificate()}}
	verifiedSrv.StartTLS()
	t.Cleanup(verifiedSrv.Close)
	verified := &backend{addr: verifiedSrv.Listener.Addr().String(), port: verifiedSrv.Listener.Addr().(*net.TCPAddr).Port}
	caSecret := fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: backend-ca, namespace: default}
data:
  ca.crt: %s
`, base64.StdEncoding.EncodeToString(ca.CertPEM))

	cfgFile := filepath.Join(t.TempDir(), "sluice.yaml")
	writeFile(t, cfgFile, "wasm:\n  cache_dir: "+wazeroCache+"\n")
	dir := t.TempDir()
	const n = "nginx.ingress.kubernetes.io/"
	writeFile(t, filepath.Join(dir, "base.yaml"), classYAML+"---\n"+
		service("plain", plain)+"---\n"+service("limited", limited)+"---\n"+
		service("tls1", tls1)+"---\n"+service("grpcs", grpcs)+"---\n"+
		service("verified", verified)+"---\n"+caSecret)
	writeFile(t, filepath.Join(dir, "routes.yaml"), strings.Join([]string{
		nginxIngress("https", "https.test", "tls1", n+"backend-protocol: HTTPS"),
		nginxIngress("grpcs", "grpcs.test", "grpcs", n+"backend-protocol: GRPCS"),
		nginxIngress("fcgi", "fcgi.test", "plain", n+"backend-protocol: FCGI"),
		nginxIngress("verify", "verify.test", "verified", n+"backend-protocol: HTTPS", n+`proxy-ssl-verify: "on"`,
			n+"proxy-ssl-secret: default/backend-ca", n+"proxy-ssl-name: web.default.svc"),
		nginxIngress("wrong-name", "wrongname.test", "verified", n+"backend-protocol: HTTPS", n+`proxy-ssl-verify: "on"`,
			n+"proxy-ssl-secret: default/backend-ca", n+"proxy-ssl-name: db.default.svc"),
		nginxIngress("unverified", "unverified.test", "tls1", n+"backend-protocol: HTTPS", n+`proxy-ssl-verify: "on"`,
			n+"proxy-ssl-secret: default/backend-ca", n+"proxy-ssl-name: web.default.svc"),
		nginxIngress("body", "body.test", "plain", n+"proxy-body-size: 1k"),
		nginxIngress("outside", "outside.test", "plain", n+`whitelist-source-range: "10.0.0.0/8"`),
		nginxIngress("inside", "inside.test", "plain", n+`whitelist-source-range: "127.0.0.1"`),
		nginxIngress("denied", "denied.test", "plain", n+`whitelist-source-range: "127.0.0.1"`, n+`denylist-source-range: "127.0.0.0/8"`),
		nginxIngress("slow", "slow.test", "plain", n+`proxy-read-timeout: "1"`),
		nginxIngress("warm", "warm.test", "plain", n+`limit-rps: "1000"`),
		nginxIngress("rps", "rps.test", "limited", n+`limit-rps: "1"`, n+`limit-burst-multiplier: "3"`),
		nginxIngress("shortcut", "shortcut.test", "plain", `sluice.io/rate-limit: "1/m burst=2"`),
		nginxIngress("shortcut2", "shortcut2.test", "plain", `sluice.io/rate-limit: "1/m burst=2"`),
		nginxIngress("bad-range", "badrange.test", "plain", n+`whitelist-source-range: "10.0.0.0/33"`),
	}, "---\n"))
	g := startGateway(t, "--config", cfgFile, "--manifests", dir)

	// The rate-limited routes are served once the ratelimit filter is
	// compiled (slow in a -race gateway).
	waitUntil(t, 4*time.Minute, "the rate-limited routes", func() bool {
		status, _, _, err := tryBuiltinGet(g, "warm.test")
		return err == nil && status == 200
	})

	t.Run("backend-protocol HTTPS", func(t *testing.T) {
		resp, body := nginxDo(t, g, "GET", "https.test", nil, 0)
		if resp.StatusCode != 200 || body != "tls HTTP/1.1 true\n" {
			t.Fatalf("got %d %q, want the TLS backend over HTTP/1.1", resp.StatusCode, body)
		}
	})
	t.Run("backend-protocol GRPCS", func(t *testing.T) {
		resp, body := nginxDo(t, g, "POST", "grpcs.test", strings.NewReader("\x00\x00\x00\x00\x02hi"), -1)
		if resp.StatusCode != 200 || body != "\x00\x00\x00\x00\x02hi" || resp.Trailer.Get("Grpc-Status") != "0" {
			t.Fatalf("got %d %q trailers %v", resp.StatusCode, body, resp.Trailer)
		}
	})
	t.Run("proxy-ssl-verify", func(t *testing.T) {
		for host, want := range map[string]string{
			"verify.test":     "200 verified sni=web.default.svc\n",
			"wrongname.test":  "502", // the certificate is not for db.default.svc
			"unverified.test": "502", // httptest's certificate is not from the CA
		} {
			resp, body := nginxDo(t, g, "GET", host, nil, 0)
			got := fmt.Sprint(resp.StatusCode)
			if resp.StatusCode == 200 {
				got += " " + body
			}
			if got != want {
				t.Errorf("%s: got %q, want %q", host, got, want)
			}
		}
	})
	t.Run("backend-protocol FCGI is warned about", func(t *testing.T) {
		g.waitLog(t, `Ingress default/fcgi`, `nginx.ingress.kubernetes.io/backend-protocol`, `FCGI`, `not supported by sluice`)
		if resp, body := nginxDo(t, g, "GET", "fcgi.test", nil, 0); resp.StatusCode != 200 {
			t.Fatalf("the rest of the Ingress is served: %d %q", resp.StatusCode, body)
		}
	})
	t.Run("proxy-body-size", func(t *testing.T) {
		before := bigBodies.Load()
		for _, tc := range []struct {
			name   string
			size   int
			length int64
			want   int
		}{
			{"declared under", 1000, 1000, 200},
			{"chunked at the limit", 1024, -1, 200},
			{"declared over", 1025, 1025, 413},
			{"chunked over", 64 << 10, -1, 413},
		} {
			length := tc.length
			if length >= 0 {
				length = int64(tc.size)
			}
			resp, body := nginxDo(t, g, "POST", "body.test", io.MultiReader(strings.NewReader(strings.Repeat("x", tc.size))), length)
			if resp.StatusCode != tc.want {
				t.Errorf("%s: %d %q, want %d", tc.name, resp.StatusCode, body, tc.want)
			}
		}
		if got := bigBodies.Load() - before; got != 0 {
			t.Errorf("the backend received %d complete bodies over the limit", got)
		}
	})
	t.Run("source ranges", func(t *testing.T) {
		for host, want := range map[string]int{"outside.test": 403, "inside.test": 200, "denied.test": 403} {
			resp, body := nginxDo(t, g, "GET", host, nil, 0)
			if resp.StatusCode != want {
				t.Errorf("%s: %d %q, want %d", host, resp.StatusCode, body, want)
			}
		}
		// X-Forwarded-For from a peer that is not a trusted proxy changes nothing.
		if status, _, body := builtinGet(t, g, "outside.test", "X-Forwarded-For", "10.1.2.3"); status != 403 {
			t.Errorf("forged X-Forwarded-For: %d %q, want 403", status, body)
		}
	})
	t.Run("invalid source range fails closed", func(t *testing.T) {
		if status, _, body := builtinGet(t, g, "badrange.test"); status != 503 {
			t.Fatalf("got %d %q, want 503", status, body)
		}
		g.waitLog(t, `Ingress default/bad-range`, `whitelist-source-range`, `is not a CIDR prefix`)
	})
	t.Run("proxy-read-timeout", func(t *testing.T) {
		if status, _, body := builtinGet(t, g, "slow.test", "X-Sleep", "1"); status != 504 {
			t.Fatalf("got %d %q, want 504", status, body)
		}
	})
	t.Run("limit-rps", func(t *testing.T) {
		// rate 1/s, burst 3: a quick run of 10 gets the burst (plus what
		// refills meanwhile), the rest 429, and the backend sees exactly
		// the accepted ones.
		start := time.Now()
		var ok, limitedN int64
		for range 10 {
			status, hdr, body := builtinGet(t, g, "rps.test")
			switch status {
			case 200:
				ok++
			case 429:
				limitedN++
				if hdr.Get("Retry-After") == "" {
					t.Errorf("429 without Retry-After: %q", body)
				}
			default:
				t.Fatalf("got %d %q", status, body)
			}
		}
		allowed := 3 + int64(time.Since(start)/time.Second)
		if ok < 3 || ok > allowed || limitedN == 0 {
			t.Fatalf("%d accepted and %d limited; want 3..%d accepted and some limited", ok, limitedN, allowed)
		}
		if got := limitedSeen.Load(); got != ok {
			t.Fatalf("the backend saw %d requests, %d were accepted", got, ok)
		}
	})
	t.Run("sluice.io/rate-limit", func(t *testing.T) {
		for i, want := range []int{200, 200, 429} {
			if status, _, body := builtinGet(t, g, "shortcut.test"); status != want {
				t.Fatalf("request %d: %d %q, want %d", i, status, body, want)
			}
		}
		// Another Ingress with the same limit has its own buckets.
		for i, want := range []int{200, 200, 429} {
			if status, _, body := builtinGet(t, g, "shortcut2.test"); status != want {
				t.Fatalf("second Ingress, request %d: %d %q, want %d", i, status, body, want)
			}
		}
	})
}

// TestNginxTrustedProxyThroughGateway: with proxy.trusted_proxies, a
// trusted peer's X-Forwarded-For decides the client for source ranges and
// for the rate limits the annotations set; the right-most untrusted
// address counts, so a client cannot prepend a forged one. Also
// proxy.max_body_size, the body limit of Ingresses that set none.
func TestNginxTrustedProxyThroughGateway(t *testing.T) {
	be := startBackend(t, "web", nil)
	cfgFile := filepath.Join(t.TempDir(), "sluice.yaml")
	writeFile(t, cfgFile, "wasm:\n  cache_dir: "+wazeroCache+"\nproxy:\n  trusted_proxies: [127.0.0.1]\n  max_body_size: 1k\n")
	dir := t.TempDir()
	const n = "nginx.ingress.kubernetes.io/"
	writeFile(t, filepath.Join(dir, "base.yaml"), classYAML+"---\n"+service("web", be))
	writeFile(t, filepath.Join(dir, "routes.yaml"), strings.Join([]string{
		nginxIngress("ranges", "ranges.test", "web", n+`allowlist-source-range: "10.0.0.0/8"`, n+`denylist-source-range: "10.9.0.0/16"`),
		nginxIngress("limited", "limited.test", "web", `sluice.io/rate-limit: "1/m burst=1"`),
		nginxIngress("default-size", "defaultsize.test", "web"),
		nginxIngress("unlimited", "unlimited.test", "web", n+`proxy-body-size: "0"`),
	}, "---\n"))
	g := startGateway(t, "--config", cfgFile, "--manifests", dir)
	waitUntil(t, 4*time.Minute, "the rate-limited route", func() bool {
		status, _, _, err := tryBuiltinGet(g, "limited.test", "X-Forwarded-For", "192.0.2.99")
		return err == nil && status == 200
	})

	for _, tc := range []struct {
		xff  string
		want int
	}{
		{"", 403},                    // the peer itself, 127.0.0.1
		{"10.1.2.3", 200},            // the client behind the trusted proxy
		{"10.9.1.1", 403},            // denied
		{"10.1.2.3, 192.0.2.1", 403}, // right-most untrusted: 192.0.2.1
		{"192.0.2.1, 10.1.2.3", 200}, // a forged left part changes nothing
		{"10.1.2.3, 127.0.0.1", 200}, // trusted hops are skipped
	} {
		var hdr []string
		if tc.xff != "" {
			hdr = []string{"X-Forwarded-For", tc.xff}
		}
		if status, _, body := builtinGet(t, g, "ranges.test", hdr...); status != tc.want {
			t.Errorf("X-Forwarded-For %q: %d %q, want %d", tc.xff, status, body, tc.want)
		}
	}
	// proxy.max_body_size is the limit of Ingresses that set none.
	for host, want := range map[string]int{"defaultsize.test": 413, "unlimited.test": 200} {
		resp, body := nginxDo(t, g, "POST", host, strings.NewReader(strings.Repeat("x", 2048)), 2048)
		if resp.StatusCode != want {
			t.Errorf("%s: 2 KiB body: %d %q, want %d", host, resp.StatusCode, body, want)
		}
	}
	// One bucket per client behind the proxy.
	for i, tc := range []struct {
		client string
		want   int
	}{{"10.0.0.1", 200}, {"10.0.0.1", 429}, {"10.0.0.2", 200}, {"10.0.0.2", 429}} {
		if status, _, body := builtinGet(t, g, "limited.test", "X-Forwarded-For", tc.client); status != tc.want {
			t.Errorf("request %d from %s: %d %q, want %d", i, tc.client, status, body, tc.want)
		}
	}
}
