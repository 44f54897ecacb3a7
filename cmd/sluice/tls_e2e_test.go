package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicegw/sluice/internal/kubetest"
	"github.com/sluicegw/sluice/internal/testcert"
)

// The TLS end-to-end tests (issue 6): a real gateway process, and for ACME
// a real CA, Debian's pebble, with pebble-challtestsrv as its DNS (every
// name resolves to 127.0.0.1). Everything listens on loopback. See
// ../shared/acme-pebble.md for the recipe and its gotchas.

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// pebble is a running ACME CA.
type pebble struct {
	dir      string // directory URL
	mgmt     string // management API base URL
	apiCA    string // PEM file trusting pebble's own API certificate
	apiRoots *x509.CertPool
	log      *syncWriter // pebble's own output
}

// pebbleOptions vary a pebble start.
type pebbleOptions struct {
	eab map[string]string // key ID → base64url MAC key; non-nil requires EAB
	env []string          // more PEBBLE_* variables
}

// startPebble starts pebble-challtestsrv and pebble, validating challenges
// on httpPort (HTTP-01) and tlsPort (TLS-ALPN-01). Both stop with the test.
func startPebble(t *testing.T, httpPort, tlsPort int, opts pebbleOptions) *pebble {
	t.Helper()
	for _, bin := range []string{"pebble", "pebble-challtestsrv"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not found: the ACME tests need a real CA; install it with `apt-get install pebble` (Debian; make deps does it)", bin)
		}
	}
	dir := t.TempDir()
	ca, err := testcert.CA("pebble api ca")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := testcert.Leaf(ca, []string{"localhost", "127.0.0.1"}, testcert.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := &pebble{apiCA: filepath.Join(dir, "api-ca.pem"), apiRoots: x509.NewCertPool()}
	p.apiRoots.AddCert(ca.Cert)
	writeFile(t, p.apiCA, string(ca.CertPEM))
	writeFile(t, filepath.Join(dir, "cert.pem"), string(leaf.CertPEM))
	writeFile(t, filepath.Join(dir, "key.pem"), string(leaf.KeyPEM))

	ports := kubetest.FreePorts(t, 3) // ACME API, pebble management, challtestsrv management
	dns := freeUDPPort(t)
	p.dir = fmt.Sprintf("https://127.0.0.1:%d/dir", ports[0])
	p.mgmt = fmt.Sprintf("https://127.0.0.1:%d", ports[1])
	pcfg := map[string]any{
		"listenAddress":                  fmt.Sprintf("127.0.0.1:%d", ports[0]),
		"managementListenAddress":        fmt.Sprintf("127.0.0.1:%d", ports[1]),
		"certificate":                    filepath.Join(dir, "cert.pem"),
		"privateKey":                     filepath.Join(dir, "key.pem"),
		"httpPort":                       httpPort,
		"tlsPort":                        tlsPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": opts.eab != nil,
	}
	if opts.eab != nil {
		pcfg["externalAccountMACKeys"] = opts.eab
	}
	cfg, _ := json.Marshal(map[string]any{"pebble": pcfg})
	writeFile(t, filepath.Join(dir, "pebble.json"), string(cfg))

	run := func(name string, env []string, args ...string) *syncWriter {
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), env...)
		out := new(syncWriter)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
			if t.Failed() {
				t.Logf("%s output:\n%s", name, out.String())
			}
		})
		return out
	}
	run("pebble-challtestsrv", nil,
		"-dns01", fmt.Sprintf("127.0.0.1:%d", dns), "-http01", "", "-https01", "", "-tlsalpn01", "",
		"-management", fmt.Sprintf("127.0.0.1:%d", ports[2]), "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "")
	p.log = run("pebble", append([]string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0"}, opts.env...),
		"-config", filepath.Join(dir, "pebble.json"), "-dnsserver", fmt.Sprintf("127.0.0.1:%d", dns), "-strict=false")

	c := p.client()
	waitUntil(t, 20*time.Second, "pebble's directory", func() bool {
		resp, err := c.Get(p.dir)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return p
}

func (p *pebble) client() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.apiRoots}}}
}

// roots returns the pool of pebble's current root (new at every start).
func (p *pebble) roots(t *testing.T) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(p.root(t, 0))
	return pool
}

// root returns pebble's root number i (0 is the default chain's; more with
// PEBBLE_ALTERNATE_ROOTS).
func (p *pebble) root(t *testing.T, i int) *x509.Certificate {
	t.Helper()
	resp, err := p.client().Get(fmt.Sprintf("%s/roots/%d", p.mgmt, i))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	blk, _ := pem.Decode(body)
	if blk == nil {
		t.Fatalf("pebble /roots/%d: no PEM certificate in %q", i, body)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatalf("pebble /roots/%d: %v", i, err)
	}
	return c
}

// tlsDial handshakes with addr for server name sni (no SNI when empty).
func tlsDial(addr, sni string, cfg *tls.Config) (*tls.Conn, error) {
	cfg = cfg.Clone()
	cfg.ServerName = sni
	if sni == "" {
		cfg.InsecureSkipVerify = true
	}
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// httpsClient sends every request to addr, verifying the server against
// roots for the URL's host (the SNI), presenting certs if any.
func httpsClient(addr string, roots *x509.CertPool, certs ...tls.Certificate) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			},
			DisableKeepAlives: true,
		},
	}
}

// tlsStats reads the gateway's certificate counters.
func tlsStats(t *testing.T, g *gateway) map[string]int64 {
	t.Helper()
	resp, err := http.Get("http://" + g.addr("admin") + "/stats/tls")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]int64
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// acmeSetup varies acmeGateway.
type acmeSetup struct {
	acme   string               // lines appended to the tls.acme section
	tls    string               // lines appended to the tls section
	acmeOf func(*pebble) string // more tls.acme lines that depend on the running pebble
	pebble pebbleOptions
}

// acmeGateway starts pebble and a gateway using it as set up, with the
// manifests in files.
func acmeGateway(t *testing.T, setup acmeSetup, files map[string]string) (*gateway, *pebble) {
	t.Helper()
	ports := kubetest.FreePorts(t, 2)
	p := startPebble(t, ports[0], ports[1], setup.pebble)
	acmeExtra := setup.acme
	if setup.acmeOf != nil {
		acmeExtra += "\n" + setup.acmeOf(p)
	}
	dir := t.TempDir()
	mdir := filepath.Join(dir, "manifests")
	if err := os.Mkdir(mdir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range files {
		writeFile(t, filepath.Join(mdir, name), body)
	}
	cfg := filepath.Join(dir, "sluice.yaml")
	// Debug level: certmagic logs which challenge it answered.
	writeFile(t, cfg, fmt.Sprintf(`log: {level: debug}
tls:
  issuer: acme
  storage: %s
  acme:
    ca: %s
    email: ops@sluice.test
    trusted_roots: %s
%s
%s
`, filepath.Join(dir, "storage"), p.dir, p.apiCA, acmeExtra, setup.tls))
	g := startGateway(t, "--config", cfg, "--manifests", mdir,
		"--http-addr", fmt.Sprintf("127.0.0.1:%d", ports[0]),
		"--https-addr", fmt.Sprintf("127.0.0.1:%d", ports[1]))
	return g, p
}

func webFiles(t *testing.T, b *backend, spec string) map[string]string {
	return map[string]string{
		"class.yaml":   classYAML,
		"service.yaml": service("web", b),
		"ingress.yaml": ingress("web", spec),
	}
}

const webSpec = `  tls: [{hosts: [web.test]}]
  rules:
  - host: web.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
`

// waitServed waits until an HTTPS GET for host through the gateway verifies
// against roots and reaches the backend.
func waitServed(t *testing.T, g *gateway, host string, roots *x509.CertPool) *http.Response {
	t.Helper()
	c := httpsClient(g.addr("https"), roots)
	var last error
	var resp *http.Response
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		r, err := c.Get("https://" + host + "/")
		if err == nil {
			io.Copy(io.Discard, r.Body)
			r.Body.Close()
			if r.StatusCode == 200 {
				return r
			}
			err = fmt.Errorf("status %d", r.StatusCode)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("https://%s/ not served with a verified certificate within 30s: %v", host, last)
	return resp
}

func TestACMEHTTP01(t *testing.T) {
	b := startBackend(t, "web", nil)
	// Pebble requires external account binding here: the eab keys reach
	// the CA.
	g, p := acmeGateway(t, acmeSetup{
		acme:   "    disable_tlsalpn_challenge: true\n    eab: {key_id: kid-1, mac_key: zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W}",
		pebble: pebbleOptions{eab: map[string]string{"kid-1": "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"}},
	}, webFiles(t, b, webSpec))
	resp := waitServed(t, g, "web.test", p.roots(t))
	if resp.Header.Get("X-Backend") != "web" {
		t.Fatalf("answered by %q", resp.Header.Get("X-Backend"))
	}
	g.waitLog(t, "certificate obtained", "web.test")
	g.waitLog(t, `"challenge":"http-01"`)
	if st := tlsStats(t, g); st["obtained"] != 1 || st["failed"] != 0 {
		t.Fatalf("stats %v", st)
	}

	// HTTP is redirected to HTTPS (308), except ACME challenge paths.
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", "http://"+g.addr("http")+"/a/b?c=d", nil)
	req.Host = "web.test"
	r, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	_, port, _ := net.SplitHostPort(g.addr("https"))
	if want := "https://web.test:" + port + "/a/b?c=d"; r.StatusCode != 308 || r.Header.Get("Location") != want {
		t.Fatalf("redirect: %d %q, want 308 %q", r.StatusCode, r.Header.Get("Location"), want)
	}
	req, _ = http.NewRequest("GET", "http://"+g.addr("http")+"/.well-known/acme-challenge/unknown-token", nil)
	req.Host = "web.test"
	r, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode == 308 {
		t.Fatal("an ACME challenge path was redirected")
	}
}

func TestACMETLSALPN01(t *testing.T) {
	b := startBackend(t, "web", nil)
	// secure.test requires client certificates: the validator's acme-tls/1
	// handshake, which has none, must still get through.
	clientCA, err := testcert.CA("client ca")
	if err != nil {
		t.Fatal(err)
	}
	alice, _ := testcert.Leaf(clientCA, []string{"alice"}, testcert.Options{Client: true})
	files := webFiles(t, b, webSpec)
	files["secure.yaml"] = fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: client-ca, namespace: default}
data: {ca.crt: %s}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: secure
  namespace: default
  annotations: {sluice.io/client-verify: "on", sluice.io/client-ca-secret: client-ca}
spec:
  ingressClassName: sluice
  tls: [{hosts: [secure.test]}]
  rules:
  - host: secure.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
`, base64.StdEncoding.EncodeToString(clientCA.CertPEM))
	g, p := acmeGateway(t, acmeSetup{acme: "    disable_http_challenge: true"}, files)
	roots := p.roots(t)
	waitServed(t, g, "web.test", roots)
	g.waitLog(t, "certificate obtained", "secure.test")
	resp, err := httpsClient(g.addr("https"), roots, alice.TLSCertificate()).Get("https://secure.test/")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("secure.test with a client certificate: %v %v", resp, err)
	}
	resp.Body.Close()
	if _, err := httpsClient(g.addr("https"), roots).Get("https://secure.test/"); err == nil {
		t.Fatal("secure.test served a client without certificate")
	}
	g.waitLog(t, "certificate obtained", "web.test")
	g.waitLog(t, `"challenge":"tls-alpn-01"`)
	if strings.Contains(g.Log(), `"challenge":"http-01"`) {
		t.Fatal("http-01 used although disabled")
	}
	// The served chain verifies against pebble's root with only what the
	// gateway sends (leaf + intermediate).
	conn, err := tlsDial(g.addr("https"), "web.test", &tls.Config{RootCAs: roots})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cs := conn.ConnectionState()
	if len(cs.PeerCertificates) < 2 || len(cs.VerifiedChains) == 0 {
		t.Fatalf("chain: %d certificates, %d verified chains", len(cs.PeerCertificates), len(cs.VerifiedChains))
	}
	if cs.NegotiatedProtocol != "" && cs.NegotiatedProtocol != "h2" && cs.NegotiatedProtocol != "http/1.1" {
		t.Fatalf("negotiated %q", cs.NegotiatedProtocol)
	}
}

// On demand against pebble: a routed name gets a certificate in its first
// handshake; an unrouted one fails fast and creates no ACME order; a flood
// of random routed names is held to the rate limit.
func TestACMEOnDemand(t *testing.T) {
	b := startBackend(t, "web", nil)
	spec := `  rules:
  - host: "*.od.test"
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
`
	g, p := acmeGateway(t, acmeSetup{tls: "  on_demand: {enabled: true, rate: {burst: 2, interval: 1h}}"}, webFiles(t, b, spec))
	roots := p.roots(t)

	start := time.Now()
	conn, err := tlsDial(g.addr("https"), "a.od.test", &tls.Config{RootCAs: roots})
	if err != nil {
		t.Fatalf("first on-demand handshake: %v", err)
	}
	conn.Close()
	t.Logf("first on-demand handshake (issuance included): %s", time.Since(start))

	start = time.Now()
	if _, err := tlsDial(g.addr("https"), "evil.test", &tls.Config{RootCAs: roots}); err == nil {
		t.Fatal("unrouted name got a certificate")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("denied handshake took %s; want a fast failure", d)
	}
	st := tlsStats(t, g)
	if st["obtaining"] != 1 || st["onDemandDenied"] != 1 {
		t.Fatalf("stats %v: want exactly one issuance started (a.od.test) and one denial", st)
	}
	// Pebble logs every order's identifiers; the unrouted name is in none.
	if !strings.Contains(p.log.String(), `Value:"a.od.test"`) {
		t.Fatalf("pebble's log does not show the orders (format changed?):\n%s", p.log.String())
	}
	if strings.Contains(p.log.String(), "evil.test") {
		t.Fatal("pebble saw an ACME order for the unrouted name")
	}
	for _, line := range strings.Split(g.Log(), "\n") {
		if strings.Contains(line, "evil.test") && strings.Contains(strings.ToLower(line), "obtaining") {
			t.Fatalf("the gateway started obtaining a certificate for the unrouted name: %s", line)
		}
	}

	// The flood: one token is left of the burst of 2.
	var ok atomic.Int32
	var wg sync.WaitGroup
	const flood = 20
	for i := range flood {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := tlsDial(g.addr("https"), "r"+strconv.Itoa(i)+".od.test", &tls.Config{RootCAs: roots})
			if err == nil {
				ok.Add(1)
				c.Close()
			}
		}()
	}
	wg.Wait()
	st = tlsStats(t, g)
	if n := ok.Load(); n != 1 || st["obtaining"] != 2 || st["rateLimited"] != flood-1 {
		t.Fatalf("flood: %d handshakes succeeded, stats %v; want 1 success, 2 issuances in all, %d rate-limited", n, st, flood-1)
	}
}

// TestLocalCADefault: with no tls configuration at all, a spec.tls host
// without Secret is served with a certificate from the local CA, whose root
// `sluice ca export` prints.
func TestLocalCADefault(t *testing.T) {
	b := startBackend(t, "web", nil)
	dir := t.TempDir()
	for name, body := range webFiles(t, b, webSpec) {
		writeFile(t, filepath.Join(dir, name), body)
	}
	storage := filepath.Join(t.TempDir(), "tls")
	cfg := filepath.Join(t.TempDir(), "sluice.yaml")
	writeFile(t, cfg, "tls: {storage: "+storage+"}\n")
	g := startGateway(t, "--config", cfg, "--manifests", dir)

	out, err := exec.Command(binary, "ca", "export", "--config", cfg).Output()
	if err != nil {
		t.Fatalf("sluice ca export: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(out) {
		t.Fatalf("sluice ca export printed no PEM certificate: %q", out)
	}
	resp := waitServed(t, g, "web.test", roots)
	if resp.TLS == nil || resp.TLS.VerifiedChains[0][len(resp.TLS.VerifiedChains[0])-1].Subject.CommonName != "Sluice Local Root CA" {
		t.Fatal("not verified by the local root")
	}
	// A handshake without SNI has no default certificate here: it fails.
	if _, err := tlsDial(g.addr("https"), "", &tls.Config{}); err == nil {
		t.Fatal("handshake without SNI succeeded without a default certificate")
	}
	// Exporting again prints the same root: it is kept in storage.
	again, err := exec.Command(binary, "ca", "export", "--config", cfg).Output()
	if err != nil || string(again) != string(out) {
		t.Fatalf("second export differs (err %v)", err)
	}
}

// mtlsFixture is two hosts on one listener with different policies:
// strict.test requires a client certificate from clientCA, open.test asks
// for none; opt.test accepts one optionally; any.test accepts any.
type mtlsFixture struct {
	g          *gateway
	serverRoot *x509.CertPool
	good       tls.Certificate
	wrongCA    tls.Certificate
	expired    tls.Certificate
	seen       chan http.Header // headers the backend received
}

func startMTLS(t *testing.T) *mtlsFixture {
	t.Helper()
	f := &mtlsFixture{seen: make(chan http.Header, 100)}
	b := startBackend(t, "web", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case f.seen <- r.Header.Clone():
		default:
		}
		fmt.Fprintln(w, "web")
	}))
	clientCA, err := testcert.CA("client ca")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := testcert.CA("other ca")
	good, _ := testcert.Leaf(clientCA, []string{"alice"}, testcert.Options{Client: true})
	wrong, _ := testcert.Leaf(other, []string{"eve"}, testcert.Options{Client: true})
	expired, _ := testcert.Leaf(clientCA, []string{"old"}, testcert.Options{Client: true,
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	f.good, f.wrongCA, f.expired = good.TLSCertificate(), wrong.TLSCertificate(), expired.TLSCertificate()

	secret, roots := tlsSecret(t, "hosts-tls", "strict.test", "open.test", "opt.test", "any.test")
	f.serverRoot = roots
	caSecret := fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: client-ca, namespace: default}
data:
  ca.crt: %s
`, base64.StdEncoding.EncodeToString(clientCA.CertPEM))
	rule := func(h string) string {
		return fmt.Sprintf(`  - host: %s
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
`, h)
	}
	withAnn := func(name, ann, host string) string {
		return fmt.Sprintf(`apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: %s
  namespace: default
  creationTimestamp: "2026-01-01T00:00:00Z"
  annotations: {%s}
spec:
  ingressClassName: sluice
  tls: [{hosts: [%s], secretName: hosts-tls}]
  rules:
%s`, name, ann, host, rule(host))
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "class.yaml"), classYAML)
	writeFile(t, filepath.Join(dir, "secrets.yaml"), secret+"---\n"+caSecret)
	writeFile(t, filepath.Join(dir, "service.yaml"), service("web", b))
	writeFile(t, filepath.Join(dir, "strict.yaml"), withAnn("strict", `sluice.io/client-verify: "on", sluice.io/client-ca-secret: client-ca`, "strict.test"))
	writeFile(t, filepath.Join(dir, "opt.yaml"), withAnn("opt", `sluice.io/client-verify: optional, sluice.io/client-ca-secret: client-ca`, "opt.test"))
	writeFile(t, filepath.Join(dir, "any.yaml"), withAnn("any", `sluice.io/client-verify: optional_no_ca`, "any.test"))
	writeFile(t, filepath.Join(dir, "open.yaml"), withAnn("open", `sluice.io/hsts-max-age: "600"`, "open.test"))
	f.g = startGateway(t, "--manifests", dir)
	return f
}

// get sends GET https://host/ (SNI host) with Host header hostHeader.
func (f *mtlsFixture) get(t *testing.T, sni, hostHeader string, hdr http.Header, certs ...tls.Certificate) (*http.Response, error) {
	t.Helper()
	c := httpsClient(f.g.addr("https"), f.serverRoot, certs...)
	req, _ := http.NewRequest("GET", "https://"+sni+"/", nil)
	req.Host = hostHeader
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}

func TestMTLSPerHost(t *testing.T) {
	f := startMTLS(t)
	for _, tc := range []struct {
		name string
		sni  string
		cert *tls.Certificate
		want int // 0: the handshake fails
	}{
		{"required/none", "strict.test", nil, 0},
		{"required/good", "strict.test", &f.good, 200},
		{"required/wrong ca", "strict.test", &f.wrongCA, 0},
		{"required/expired", "strict.test", &f.expired, 0},
		{"optional/none", "opt.test", nil, 200},
		{"optional/good", "opt.test", &f.good, 200},
		{"optional/wrong ca", "opt.test", &f.wrongCA, 0},
		{"optional_no_ca/wrong ca", "any.test", &f.wrongCA, 200},
		{"none/none", "open.test", nil, 200},
		{"none/any cert", "open.test", &f.wrongCA, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var certs []tls.Certificate
			if tc.cert != nil {
				certs = append(certs, *tc.cert)
			}
			// Send the certificate even if its CA is not one the server
			// names (Go's client would otherwise send none).
			c := httpsClient(f.g.addr("https"), f.serverRoot)
			c.Transport.(*http.Transport).TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				if len(certs) == 0 {
					return &tls.Certificate{}, nil
				}
				return &certs[0], nil
			}
			resp, err := c.Get("https://" + tc.sni + "/")
			if tc.want == 0 {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("got %d, want the handshake to fail", resp.StatusCode)
				}
				return
			}
			if err != nil {
				t.Fatalf("request failed: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
}

func TestMTLSHostMustMatchSNI(t *testing.T) {
	f := startMTLS(t)
	// HTTP/2 is negotiated on an mTLS host too (its own tls.Config).
	conn, err := tlsDial(f.g.addr("https"), "strict.test", &tls.Config{RootCAs: f.serverRoot, Certificates: []tls.Certificate{f.good}, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("negotiated %q on strict.test, want h2", p)
	}
	conn.Close()
	// Verified on strict.test, asking for open.test over the same
	// connection, and the other way round: 421 both times.
	for _, tc := range []struct{ sni, host string }{
		{"strict.test", "open.test"},
		{"open.test", "strict.test"},
		{"strict.test", "other.test"},
	} {
		resp, err := f.get(t, tc.sni, tc.host, nil, f.good)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusMisdirectedRequest {
			t.Fatalf("SNI %s, Host %s: status %d, want 421", tc.sni, tc.host, resp.StatusCode)
		}
	}
	// Same name, any case and with a port: served.
	resp, err := f.get(t, "strict.test", "STRICT.test:443", nil, f.good)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("matching Host: %v %v", resp, err)
	}
	// HSTS on the host that asks for it only.
	resp, err = f.get(t, "open.test", "open.test", nil)
	if err != nil || resp.Header.Get("Strict-Transport-Security") != "max-age=600" {
		t.Fatalf("HSTS: %v %v", resp, err)
	}
	resp, err = f.get(t, "strict.test", "strict.test", nil, f.good)
	if err != nil || resp.Header.Get("Strict-Transport-Security") != "" {
		t.Fatalf("HSTS on a host without it: %v %v", resp, err)
	}
}

func TestMTLSSpoofedIdentityStripped(t *testing.T) {
	f := startMTLS(t)
	spoof := http.Header{
		"X-Forwarded-Client-Cert": {"By=spiffe://evil;Hash=00;Subject=\"CN=admin\""},
		"Ssl-Client-Verify":       {"SUCCESS"},
		"Ssl-Client-S-Dn":         {"CN=admin"},
	}
	for _, sni := range []string{"strict.test", "open.test"} {
		resp, err := f.get(t, sni, sni, spoof, f.good)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", sni, resp, err)
		}
		select {
		case h := <-f.seen:
			// Sluice adds no identity headers of its own yet (filters
			// will expose the verified identity): none may arrive.
			for k := range spoof {
				if v := h.Get(k); v != "" {
					t.Fatalf("%s: the backend got the client's %s: %q", sni, k, v)
				}
			}
		case <-time.After(5 * time.Second):
			t.Fatal("backend saw no request")
		}
	}
}

// noRedirect adds sluice.io/ssl-redirect: "false" to an Ingress made by
// ingress(), for tests that send plain HTTP to a host with TLS.
func noRedirect(manifest string) string {
	return strings.Replace(manifest, `creationTimestamp: "2026-01-01T00:00:00Z"}`,
		`creationTimestamp: "2026-01-01T00:00:00Z", annotations: {sluice.io/ssl-redirect: "false"}}`, 1)
}

// The CA offers two chains (pebble's alternate root); preferred_chains
// picks the one ending at the named root.
func TestACMEPreferredChain(t *testing.T) {
	b := startBackend(t, "web", nil)
	g, p := acmeGateway(t, acmeSetup{
		pebble: pebbleOptions{env: []string{"PEBBLE_ALTERNATE_ROOTS=1"}},
		acmeOf: func(p *pebble) string {
			return fmt.Sprintf("    preferred_chains: {root_common_name: [%q]}", p.root(t, 1).Subject.CommonName)
		},
	}, webFiles(t, b, webSpec))
	alt := x509.NewCertPool()
	alt.AddCert(p.root(t, 1))
	waitServed(t, g, "web.test", alt)
	if _, err := tlsDial(g.addr("https"), "web.test", &tls.Config{RootCAs: p.roots(t)}); err == nil {
		t.Fatal("the served chain verifies against the default root too: the preference was not applied")
	}
}
