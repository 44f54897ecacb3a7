package core

import (
	"crypto/tls"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicegw/sluice/core/internal/certstore"
	"github.com/sluicegw/sluice/core/internal/config"
	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/internal/testcert"
)

func testGateway(t *testing.T, cfg *config.Config) *Gateway {
	t.Helper()
	cfg.TLS.Storage = t.TempDir()
	g := &Gateway{cfg: cfg}
	g.log = slog.New(slog.DiscardHandler)
	if err := g.initTLS(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.tls.mgr.Close() })
	return g
}

func TestTLSView(t *testing.T) {
	ca, _ := testcert.CA("ca")
	leaf, _ := testcert.Leaf(ca, []string{"static.test", "*.sw.test"}, testcert.Options{})
	static, _ := certstore.Build([]*model.Certificate{{CertPEM: leaf.CertPEM, KeyPEM: leaf.KeyPEM}})
	cfg := config.Default()
	cfg.TLS.Hosts = []string{"Extra.test", "static.test"}
	no := false
	st := &state{cfg: cfg, certs: static, snap: &model.Snapshot{Hosts: []*model.VirtualHost{
		{Name: ""},
		{Name: "*.sw.test", TLS: true},
		{Name: "*.w.test", TLS: true},
		{Name: "a.test", TLS: true},
		{Name: "plain.test"},
		{Name: "private.test", TLSPolicy: &model.HostTLS{OnDemand: &no}},
		{Name: "static.test", TLS: true},
	}}}
	v := tlsView(st)
	slices.Sort(v.Managed)
	slices.Sort(v.Routed)
	if want := []string{"*.w.test", "a.test", "extra.test"}; !slices.Equal(v.Managed, want) {
		t.Errorf("managed %q, want %q (static names excluded)", v.Managed, want)
	}
	if want := []string{"*.sw.test", "*.w.test", "a.test", "plain.test", "static.test"}; !slices.Equal(v.Routed, want) {
		t.Errorf("routed %q, want %q (no catch-all, no opted-out host)", v.Routed, want)
	}
}

func TestTLSPolicies(t *testing.T) {
	ca, _ := testcert.CA("client ca")
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	revoked, _ := testcert.Leaf(ca, []string{"mallory"}, testcert.Options{Client: true})
	crl, _ := testcert.CRL(ca, revoked.Cert)
	crlFile := filepath.Join(t.TempDir(), "ca.crl")
	if err := os.WriteFile(crlFile, crl, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.TLS.ClientAuth = config.ClientAuth{Verify: "on", CA: caFile, CRL: crlFile, Depth: 1}
	cfg.TLS.HSTS = config.HSTS{MaxAge: time.Hour, IncludeSubdomains: true}
	g := testGateway(t, cfg)
	off, yes, zero := "off", true, time.Duration(0)
	snap := &model.Snapshot{Hosts: []*model.VirtualHost{
		{Name: "default.test", TLS: true},
		{Name: "open.test", TLSPolicy: &model.HostTLS{ClientVerify: off, HSTSMaxAge: &zero}},
		{Name: "broken.test", TLSPolicy: &model.HostTLS{Source: model.ObjectRef{Kind: "Ingress", Namespace: "ns", Name: "b"}, ClientVerify: "on", ClientCA: &model.CABundle{}}},
		{Name: "redir.test", TLSPolicy: &model.HostTLS{Redirect: &yes}},
	}}
	pol, warnings := g.tlsPolicies(cfg, snap)
	if len(warnings) != 1 || warnings[0].Object.Name != "b" {
		t.Fatalf("warnings %v, want one for the broken CA of Ingress ns/b", warnings)
	}
	// A CRL file that holds no CRL: every default host refuses clients.
	bad := *cfg
	bad.TLS.ClientAuth.CRL = caFile
	_, warnings = g.tlsPolicies(&bad, &model.Snapshot{Hosts: []*model.VirtualHost{{Name: "x.test"}}})
	if len(warnings) != 1 || warnings[0].Object.Name != "tls.client_auth" {
		t.Fatalf("warnings %v, want one naming tls.client_auth", warnings)
	}
	d := pol.Lookup("default.test")
	if d == nil || !d.ClientAuth.Enabled() || d.ClientAuth.CAs == nil || len(d.ClientAuth.CRLs) != 1 || d.HSTS != "max-age=3600; includeSubDomains" || !d.TLS || !d.Redirect {
		t.Errorf("default.test: %+v", d)
	}
	if o := pol.Lookup("open.test"); o == nil || o.ClientAuth.Enabled() || o.HSTS != "" {
		t.Errorf("open.test: %+v", o)
	}
	// Fail closed: the host keeps requiring certificates, with no CA.
	b := pol.Lookup("broken.test")
	if b == nil || !b.ClientAuth.Enabled() {
		t.Fatalf("broken.test: %+v", b)
	}
	c, _ := pol.ConfigForClient(&tls.ClientHelloInfo{ServerName: "broken.test"})
	if c == nil || c.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Fatal("broken.test does not require a client certificate")
	}
}

func TestPlainHandlerRedirect(t *testing.T) {
	cfg := config.Default()
	g := testGateway(t, cfg)
	no := false
	snap := &model.Snapshot{Hosts: []*model.VirtualHost{
		{Name: "tls.test", TLS: true},
		{Name: "plain.test"},
		{Name: "optout.test", TLS: true, TLSPolicy: &model.HostTLS{Redirect: &no}},
	}}
	pol, _ := g.tlsPolicies(cfg, snap)
	g.live.Store(&state{cfg: cfg, snap: snap, policies: pol})
	g.tls.httpsPort.Store(8443)
	h := g.plainHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(299) }))
	for _, tc := range []struct {
		host, target string
		status       int
		location     string
	}{
		{"tls.test", "/a?b=c", 308, "https://tls.test:8443/a?b=c"},
		{"TLS.test:8080", "/", 308, "https://tls.test:8443/"},
		{"tls.test", "/.well-known/acme-challenge/tok", 299, ""},
		{"plain.test", "/", 299, ""},
		{"optout.test", "/", 299, ""},
		{"unknown.test", "/", 299, ""},
	} {
		req := httptest.NewRequest("GET", "http://"+tc.host+tc.target, nil)
		req.Host = tc.host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.status || rec.Header().Get("Location") != tc.location {
			t.Errorf("%s%s: %d %q, want %d %q", tc.host, tc.target, rec.Code, rec.Header().Get("Location"), tc.status, tc.location)
		}
	}
	// redirect.port 443 writes no port.
	cfg2 := *cfg
	cfg2.TLS.Redirect.Port = 443
	g.live.Store(&state{cfg: &cfg2, snap: snap, policies: pol})
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "http://tls.test/x", nil)
	h.ServeHTTP(rec, req)
	if rec.Header().Get("Location") != "https://tls.test/x" {
		t.Errorf("port 443: %q", rec.Header().Get("Location"))
	}
	// No HTTPS listener and no redirect.port: nothing to redirect to.
	g.live.Store(&state{cfg: cfg, snap: snap, policies: pol})
	g.tls.httpsPort.Store(0)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "http://tls.test/x", nil))
	if rec.Code != 299 {
		t.Errorf("without HTTPS listener: %d %q", rec.Code, rec.Header().Get("Location"))
	}
}

func TestSecureHandlerMisdirected(t *testing.T) {
	cfg := config.Default()
	g := testGateway(t, cfg)
	snap := &model.Snapshot{Hosts: []*model.VirtualHost{
		{Name: "mtls.test", TLSPolicy: &model.HostTLS{ClientVerify: "optional_no_ca"}},
		{Name: "open.test"},
		{Name: "other.test"},
	}}
	pol, _ := g.tlsPolicies(cfg, snap)
	g.live.Store(&state{cfg: cfg, snap: snap, policies: pol})
	h := g.secureHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(299) }))
	for _, tc := range []struct {
		sni, host string
		status    int
	}{
		{"mtls.test", "mtls.test", 299},
		{"mtls.test", "MTLS.test:8443", 299},
		{"mtls.test", "open.test", 421},
		{"open.test", "mtls.test", 421},
		{"", "mtls.test", 421},
		{"open.test", "other.test", 299}, // no mTLS on either side
	} {
		req := httptest.NewRequest("GET", "https://"+tc.host+"/", nil)
		req.Host = tc.host
		req.TLS = &tls.ConnectionState{ServerName: tc.sni}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.status {
			t.Errorf("SNI %q Host %q: %d, want %d", tc.sni, tc.host, rec.Code, tc.status)
		}
	}
}

func TestStaticCertificateFiles(t *testing.T) {
	ca, _ := testcert.CA("ca")
	leaf, _ := testcert.Leaf(ca, []string{"file.test"}, testcert.Options{})
	dir := t.TempDir()
	crt, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	os.WriteFile(crt, leaf.CertPEM, 0o600)
	os.WriteFile(key, leaf.KeyPEM, 0o600)
	cfg := config.Default()
	cfg.TLS.Certificates = []config.CertFile{{Cert: crt, Key: key}, {Cert: filepath.Join(dir, "missing.pem"), Key: key}}
	store, errs := certstore.Build(staticCertificates(cfg, &model.Snapshot{}))
	if store.Lookup("file.test") == nil {
		t.Fatal("the certificate file is not served")
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "tls.certificates[1]") || !strings.Contains(errs[0].Error(), "no such file") {
		t.Fatalf("errors %v, want one naming the missing file", errs)
	}
}

// BenchmarkSecureHandler is the per-request cost of the HTTPS checks (421,
// HSTS) in front of the proxy.
func BenchmarkSecureHandler(b *testing.B) {
	cfg := config.Default()
	cfg.TLS.Storage = b.TempDir()
	g := &Gateway{cfg: cfg, log: slog.New(slog.DiscardHandler)}
	if err := g.initTLS(cfg); err != nil {
		b.Fatal(err)
	}
	defer g.tls.mgr.Close()
	hsts := time.Hour
	snap := &model.Snapshot{Hosts: []*model.VirtualHost{
		{Name: "mtls.test", TLSPolicy: &model.HostTLS{ClientVerify: "optional_no_ca", HSTSMaxAge: &hsts}},
		{Name: "open.test"},
	}}
	pol, _ := g.tlsPolicies(cfg, snap)
	g.live.Store(&state{cfg: cfg, snap: snap, policies: pol})
	h := g.secureHandler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	for _, host := range []string{"mtls.test", "open.test"} {
		b.Run(host, func(b *testing.B) {
			req := httptest.NewRequest("GET", "https://"+host+"/", nil)
			req.TLS = &tls.ConnectionState{ServerName: host}
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, req)
			}
		})
	}
}

func TestHostOnly(t *testing.T) {
	for in, want := range map[string]string{
		"a.test":         "a.test",
		"A.Test:8443":    "a.test",
		"a.test.":        "a.test",
		"a.test.:443":    "a.test",
		"[::1]:443":      "::1",
		"[::1]":          "::1",
		"127.0.0.1:8080": "127.0.0.1",
		"":               "",
	} {
		if got := hostOnly(in); got != want {
			t.Errorf("hostOnly(%q) = %q, want %q", in, got, want)
		}
	}
}
