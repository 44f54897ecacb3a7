package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicegw/sluice/internal/kubetest"
	"github.com/sluicegw/sluice/internal/testcert"
)

// builtinGet sends GET / for host through the gateway's HTTP listener.
func builtinGet(t *testing.T, g *gateway, host string, hdr ...string) (int, http.Header, string) {
	t.Helper()
	status, h, body, err := tryBuiltinGet(g, host, hdr...)
	if err != nil {
		t.Fatalf("GET %s: %v", host, err)
	}
	return status, h, body
}

func tryBuiltinGet(g *gateway, host string, hdr ...string) (int, http.Header, string, error) {
	req, err := http.NewRequest("GET", "http://"+g.addr("http")+"/", nil)
	if err != nil {
		return 0, nil, "", err
	}
	req.Host = host
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b), err
}

// TestRateLimitThroughGateway: the built-in ratelimit filter, by name in
// the annotation and through a config-file name pointing at
// builtin:ratelimit, answers 429 with Retry-After and RateLimit headers
// after the burst, and the upstream never sees a limited request. A bad
// config is refused at load: a warning naming the filter and the field,
// and the route answers 503.
func TestRateLimitThroughGateway(t *testing.T) {
	var seen atomic.Int64
	be := startBackend(t, "web", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		io.WriteString(w, "web\n")
	}))
	cfgFile := filepath.Join(t.TempDir(), "sluice.yaml")
	writeFile(t, cfgFile, `wasm:
  cache_dir: `+wazeroCache+`
filters:
  strict:
    module: builtin:ratelimit
    config: {limits: [{name: per-client, rate: 1, period: 1m, burst: 1, key: "client_ip+header:X-User"}]}
`)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "base.yaml"), classYAML+"---\n"+service("web", be))
	g := startGateway(t, "--config", cfgFile, "--manifests", dir)
	writeFile(t, filepath.Join(dir, "routes.yaml"),
		filteredIngress("limited", "limited.test", "web", "name: ratelimit\nconfig: {rate: 1, period: 1m, burst: 3, key: route}")+"---\n"+
			filteredIngress("named", "named.test", "web", "name: strict")+"---\n"+
			filteredIngress("bad", "bad.test", "web", "name: ratelimit\nconfig: {limits: [{rate: 0, burst: 2}]}"))

	// The route appears once its filter is compiled (a cold compile of the
	// guest in a -race gateway takes a while).
	waitUntil(t, 4*time.Minute, "the rate-limited routes", func() bool {
		status, _, _, err := tryBuiltinGet(g, "named.test", "X-User", "warmup")
		return err == nil && status == 200
	})
	before := seen.Load()
	for i, want := range []int{200, 200, 200, 429, 429} {
		status, hdr, body := builtinGet(t, g, "limited.test")
		if status != want {
			t.Fatalf("request %d: %d %q, want %d", i, status, body, want)
		}
		if got := hdr.Get("RateLimit-Policy"); got != `"default";q=1;w=60` {
			t.Errorf("request %d: RateLimit-Policy %q", i, got)
		}
		if want == 429 {
			if hdr.Get("Retry-After") != "60" || hdr.Get("RateLimit") != `"default";r=0;t=60` || !strings.Contains(body, "rate limit exceeded") {
				t.Errorf("request %d: Retry-After %q RateLimit %q body %q", i, hdr.Get("Retry-After"), hdr.Get("RateLimit"), body)
			}
		}
	}
	if got := seen.Load() - before; got != 3 {
		t.Errorf("the upstream saw %d requests, want 3: limited requests must not reach it", got)
	}

	// The config-file name: one token per client and X-User.
	for i, tc := range []struct {
		user   string
		status int
	}{{"alice", 200}, {"alice", 429}, {"bob", 200}, {"warmup", 429}} {
		if status, _, body := builtinGet(t, g, "named.test", "X-User", tc.user); status != tc.status {
			t.Fatalf("named request %d (%s): %d %q, want %d", i, tc.user, status, body, tc.status)
		}
	}

	// The bad config: refused at load, the route is not served.
	if status, _, body := builtinGet(t, g, "bad.test"); status != 503 {
		t.Errorf("bad config: %d %q, want 503", status, body)
	}
	g.waitLog(t, "built-in filter ratelimit: config: limits[0].rate: must be at least 1")
}

// TestHeaderPolicyThroughGateway: the built-in header-policy applies its
// rules on both directions through the real gateway.
func TestHeaderPolicyThroughGateway(t *testing.T) {
	be := startBackend(t, "web", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", "secret/1.0")
		w.Header().Set("X-Seen-Internal", r.Header.Get("X-Internal"))
		w.Header().Set("X-Seen-Host", r.Header.Get("X-Orig-Host"))
		w.Header().Set("X-Seen-Id", r.Header.Get("X-Request-Id"))
		io.WriteString(w, "web\n")
	}))
	cfgFile := filepath.Join(t.TempDir(), "sluice.yaml")
	writeFile(t, cfgFile, "wasm:\n  cache_dir: "+wazeroCache+"\n")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "base.yaml"), classYAML+"---\n"+service("web", be))
	g := startGateway(t, "--config", cfgFile, "--manifests", dir)
	writeFile(t, filepath.Join(dir, "routes.yaml"), filteredIngress("hp", "hp.test", "web", `name: header-policy
config:
  request:
    set: {X-Orig-Host: "${host}"}
    remove: [X-Internal]
    deny: [X-Debug]
    require: [{name: X-Api-Key, match: "^k[0-9]+$"}]
    reject_status: 403
    request_id: true
  response:
    set: {X-Request-Id: "${request_id}"}
    remove: [Server]
    hsts: true`))
	waitUntil(t, 4*time.Minute, "the header-policy route", func() bool {
		status, _, _, err := tryBuiltinGet(g, "hp.test", "X-Api-Key", "k1")
		return err == nil && status == 200
	})
	status, hdr, body := builtinGet(t, g, "hp.test", "X-Api-Key", "k1", "X-Internal", "leak")
	if status != 200 || body != "web\n" {
		t.Fatalf("allowed request: %d %q", status, body)
	}
	for name, want := range map[string]string{
		"Server":                    "",
		"X-Seen-Internal":           "",
		"X-Seen-Host":               "hp.test",
		"Strict-Transport-Security": "max-age=31536000; includeSubDomains",
	} {
		if got := hdr.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if id := hdr.Get("X-Request-Id"); len(id) != 32 || id != hdr.Get("X-Seen-Id") {
		t.Errorf("request id: client got %q, upstream %q", id, hdr.Get("X-Seen-Id"))
	}
	for _, hdrs := range [][]string{{}, {"X-Api-Key", "bad"}, {"X-Api-Key", "k1", "X-Debug", "1"}} {
		if status, _, body := builtinGet(t, g, "hp.test", hdrs...); status != 403 {
			t.Errorf("headers %q: %d %q, want 403", hdrs, status, body)
		}
	}
}

// spiffeClient is a client certificate for the SPIFFE ID id, signed by ca.
func spiffeClient(t *testing.T, ca *testcert.Pair, id string) tls.Certificate {
	t.Helper()
	caKey, err := tls.X509KeyPair(ca.CertPEM, ca.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(id)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: u.Path},
		URIs:         []*url.URL{u},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, caKey.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestMTLSIdentityThroughGateway: on a host whose client certificates the
// gateway verifies (optional), the built-in mtls-identity lets an allowed
// SPIFFE ID through with its identity in X-Forwarded-Client-Cert, answers
// 403 to another one and 401 without a certificate; a client's own
// X-Forwarded-Client-Cert never reaches the upstream.
func TestMTLSIdentityThroughGateway(t *testing.T) {
	be := startBackend(t, "web", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "xfcc="+strings.Join(r.Header.Values("X-Forwarded-Client-Cert"), "|")+"\n")
	}))
	clientCA, err := testcert.CA("client ca")
	if err != nil {
		t.Fatal(err)
	}
	site := startMTLSSite(t, be, clientCA, "optional",
		"name: mtls-identity\nconfig: {allow: [{spiffe_id: \"spiffe://shop.test/web\"}], forward: xfcc}")
	g, roots := site.g, site.roots

	web := spiffeClient(t, clientCA, "spiffe://shop.test/web")
	db := spiffeClient(t, clientCA, "spiffe://shop.test/db")
	get := func(certs ...tls.Certificate) (int, string, error) {
		req, err := http.NewRequest("GET", "https://id.test/", nil)
		if err != nil {
			return 0, "", err
		}
		req.Header.Set("X-Forwarded-Client-Cert", "By=spoofed;URI=spiffe://shop.test/web")
		resp, err := httpsClient(g.addr("https"), roots, certs...).Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	waitUntil(t, 4*time.Minute, "the mtls-identity route", func() bool {
		status, _, err := get(web)
		return err == nil && status == 200
	})
	status, body, err := get(web)
	if err != nil || status != 200 || !strings.HasPrefix(body, "xfcc=Hash=") || !strings.Contains(body, ";URI=spiffe://shop.test/web") || strings.Contains(body, "spoofed") || strings.Contains(body, "|") {
		t.Errorf("allowed: %d %q %v, want 200 with only the gateway's XFCC", status, body, err)
	}
	if status, body, err := get(db); err != nil || status != 403 || strings.Contains(body, "xfcc=") {
		t.Errorf("other SPIFFE ID: %d %q %v, want 403", status, body, err)
	}
	if status, body, err := get(); err != nil || status != 401 || strings.Contains(body, "xfcc=") {
		t.Errorf("no certificate: %d %q %v, want 401", status, body, err)
	}
}

// startRedisServer runs redis-server on a free loopback port until the
// test ends; kill stops it early.
func startRedisServer(t *testing.T) (addr string, kill func()) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server is not installed: run scripts/deps.sh (Debian package redis-server)")
	}
	ports := kubetest.FreePorts(t, 1)
	addr = "127.0.0.1:" + strconv.Itoa(ports[0])
	cmd := exec.Command(bin, "--port", strconv.Itoa(ports[0]), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	kill = func() {
		select {
		case <-done:
		default:
			cmd.Process.Kill()
			<-done
		}
	}
	t.Cleanup(kill)
	waitUntil(t, 10*time.Second, "redis-server listening", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return addr, kill
}

// TestRateLimitRedisThroughGateway: two gateway processes sharing Redis
// enforce one global limit; with Redis killed, they keep serving and
// follow each route's on_unavailable policy, and log the outage once.
func TestRateLimitRedisThroughGateway(t *testing.T) {
	redisAddr, killRedis := startRedisServer(t)
	var seen atomic.Int64
	be := startBackend(t, "web", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		io.WriteString(w, "web\n")
	}))
	cfgFile := filepath.Join(t.TempDir(), "sluice.yaml")
	writeFile(t, cfgFile, "wasm:\n  cache_dir: "+wazeroCache+"\nratelimit:\n  redis:\n    address: "+redisAddr+"\n    log_interval: 1h\n")
	routes := filteredIngress("global", "global.test", "web", "name: ratelimit\nconfig: {rate: 1, period: 1h, burst: 4, key: route}") + "---\n" +
		filteredIngress("strict", "strict.test", "web", "name: ratelimit\nconfig: {rate: 1000, key: route, on_unavailable: deny}")
	var gws []*gateway
	for range 2 {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "base.yaml"), classYAML+"---\n"+service("web", be))
		g := startGateway(t, "--config", cfgFile, "--manifests", dir)
		writeFile(t, filepath.Join(dir, "routes.yaml"), routes)
		gws = append(gws, g)
	}
	for _, g := range gws {
		waitUntil(t, 4*time.Minute, "the rate-limited routes", func() bool {
			status, _, _, err := tryBuiltinGet(g, "strict.test")
			return err == nil && status == 200
		})
	}
	before := seen.Load()
	statuses := map[int]int{}
	for i := range 8 {
		status, hdr, _ := builtinGet(t, gws[i%2], "global.test")
		statuses[status]++
		if status == 429 && hdr.Get("Retry-After") == "" {
			t.Errorf("request %d: 429 without Retry-After", i)
		}
	}
	if statuses[200] != 4 || statuses[429] != 4 {
		t.Fatalf("statuses %v over two gateways, want 4 × 200 and 4 × 429: one global limit", statuses)
	}
	if got := seen.Load() - before; got != 4 {
		t.Errorf("the upstream saw %d requests, want 4", got)
	}

	killRedis()
	for i := range 10 {
		g := gws[i%2]
		if status, _, body := builtinGet(t, g, "global.test"); status != 200 {
			t.Fatalf("Redis down, on_unavailable allow: request %d: %d %q, want 200", i, status, body)
		}
		if status, _, body := builtinGet(t, g, "strict.test"); status != 503 {
			t.Fatalf("Redis down, on_unavailable deny: request %d: %d %q, want 503", i, status, body)
		}
	}
	for i, g := range gws {
		select {
		case <-g.done:
			t.Fatalf("gateway %d exited with Redis down: %v", i, g.err)
		default:
		}
		if n := strings.Count(g.Log(), "rate-limit store unavailable"); n != 1 {
			t.Errorf("gateway %d logged the outage %d times, want once per interval", i, n)
		}
	}
}
