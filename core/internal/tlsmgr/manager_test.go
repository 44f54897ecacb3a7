package tlsmgr

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicegw/sluice/core/internal/certstore"
	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/internal/testcert"
)

// startLocal returns a started Manager on the local CA with fresh storage,
// and the pool that trusts its root.
func startLocal(t testing.TB, opts Options) (*Manager, *x509.CertPool) {
	t.Helper()
	opts.StoragePath = t.TempDir()
	m, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if err := m.Start(context.Background(), ListenPorts{}); err != nil {
		t.Fatal(err)
	}
	root, err := m.LocalCA().Root(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return m, poolOf(root)
}

func serverConfig(m *Manager) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: m.GetCertificate, NextProtos: []string{"h2", "http/1.1", ACMEProtocol}}
}

// waitHandshake retries until a handshake for name verifies against roots.
func waitHandshake(t testing.TB, m *Manager, name string, roots *x509.CertPool) tls.ConnectionState {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		cs, err := dial(t, serverConfig(m), &tls.Config{ServerName: name, RootCAs: roots})
		if err == nil {
			return cs
		}
		if time.Now().After(deadline) {
			t.Fatalf("no verified handshake for %s within 10s: %v", name, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func staticStore(t testing.TB, hosts ...string) (*certstore.Store, *x509.CertPool) {
	t.Helper()
	ca := must(t)(testcert.CA("static ca"))
	leaf := must(t)(testcert.Leaf(ca, hosts, testcert.Options{}))
	s, errs := certstore.Build([]*model.Certificate{{CertPEM: leaf.CertPEM, KeyPEM: leaf.KeyPEM}})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return s, poolOf(ca.Cert)
}

func TestManagedLocalCA(t *testing.T) {
	m, roots := startLocal(t, Options{})
	m.Update(View{Managed: []string{"a.test", "*.w.test"}})
	waitHandshake(t, m, "a.test", roots)
	waitHandshake(t, m, "x.w.test", roots)
	if _, err := dial(t, serverConfig(m), &tls.Config{ServerName: "b.test", RootCAs: roots}); err == nil {
		t.Fatal("a name nobody manages got a certificate")
	}
	st := m.Stats()
	if st.Obtained != 2 || st.Failed != 0 || st.Obtaining != 2 {
		t.Fatalf("stats %+v, want 2 obtained", st)
	}
	// In memory: exactly the managed names, the wildcard by its own name.
	if l := m.CachedLeaf("a.test"); l == nil || l.VerifyHostname("a.test") != nil {
		t.Errorf("CachedLeaf(a.test) = %v", l)
	}
	if l := m.CachedLeaf("*.w.test"); l == nil || l.VerifyHostname("x.w.test") != nil {
		t.Errorf("CachedLeaf(*.w.test) = %v", l)
	}
	if l := m.CachedLeaf("x.w.test"); l != nil {
		t.Errorf("CachedLeaf(x.w.test) = %v, want nil: only exact names", l.DNSNames)
	}
	if l := m.CachedLeaf("b.test"); l != nil {
		t.Errorf("CachedLeaf(b.test) = %v, want nil", l.DNSNames)
	}
}

func TestStaticWinsAndDefault(t *testing.T) {
	static, staticRoots := staticStore(t, "a.test")
	m, roots := startLocal(t, Options{DefaultServerName: "b.test"})
	// a.test is both static and (wrongly) listed as managed: static wins.
	m.Update(View{Static: static, Managed: []string{"b.test"}})
	cs := waitHandshake(t, m, "a.test", staticRoots)
	if cs.PeerCertificates[0].Issuer.CommonName != "static ca" {
		t.Fatalf("a.test served by %q, want the static certificate", cs.PeerCertificates[0].Issuer.CommonName)
	}
	waitHandshake(t, m, "b.test", roots)

	// No SNI: the static default first.
	c, err := m.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil || c.Leaf == nil || c.Leaf.Subject.CommonName != "a.test" {
		t.Fatalf("no SNI with a static certificate: %v", err)
	}
	// Without static certificates: the DefaultServerName's managed one.
	m.Update(View{Managed: []string{"b.test"}})
	c, err = m.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatalf("no SNI with default_server_name: %v", err)
	}
	leaf, _ := x509.ParseCertificate(c.Certificate[0])
	if leaf.VerifyHostname("b.test") != nil {
		t.Fatalf("no SNI got a certificate for %v", leaf.DNSNames)
	}
	// An IP address as server name (OpenSSL clients send one for
	// https://IP): as without SNI, never an issuance for the IP.
	for _, ip := range []string{"127.0.0.1", "::1", "[::1]"} {
		c, err = m.GetCertificate(&tls.ClientHelloInfo{ServerName: ip})
		if err != nil {
			t.Fatalf("SNI %s: %v", ip, err)
		}
		if leaf, _ := x509.ParseCertificate(c.Certificate[0]); leaf.VerifyHostname("b.test") != nil {
			t.Fatalf("SNI %s got a certificate for %v", ip, leaf.DNSNames)
		}
	}
}

func TestNoSNIWithoutDefault(t *testing.T) {
	m, roots := startLocal(t, Options{})
	m.Update(View{Managed: []string{"a.test"}})
	// Wait for the issuance: Close does not wait for certmagic's
	// background jobs, which would write into the removed TempDir.
	waitHandshake(t, m, "a.test", roots)
	if _, err := m.GetCertificate(&tls.ClientHelloInfo{}); !errors.Is(err, ErrNoCertificate) {
		t.Fatalf("got %v, want ErrNoCertificate", err)
	}
}

func TestBeforeStartAndClose(t *testing.T) {
	static, _ := staticStore(t, "a.test")
	m, err := New(Options{StoragePath: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	m.Update(View{Static: static, Managed: []string{"b.test"}})
	if c, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "a.test"}); err != nil || c == nil {
		t.Fatalf("static certificate before Start: %v", err)
	}
	if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "b.test"}); !errors.Is(err, ErrNoCertificate) {
		t.Fatalf("managed name before Start: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if err := m.Start(context.Background(), ListenPorts{}); err == nil {
		t.Fatal("Start after Close succeeded")
	}
}

func TestNewRejects(t *testing.T) {
	for name, opts := range map[string]Options{
		"unknown issuer":     {Issuer: "self"},
		"acme without ca":    {Issuer: IssuerACME},
		"acme no challenges": {Issuer: IssuerACME, ACME: ACMEOptions{CA: "https://127.0.0.1:1/dir", DisableHTTP01: true, DisableTLSALPN01: true}},
		"bad ask url":        {OnDemand: OnDemandOptions{Enabled: true, Ask: "ftp://127.0.0.1/ask"}},
	} {
		if _, err := New(opts); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// On demand: a routed name gets a certificate during its first handshake;
// an unrouted one fails at once without an issuance; a flood of random
// names gets at most the burst.
func TestOnDemandLocalCA(t *testing.T) {
	m, roots := startLocal(t, Options{OnDemand: OnDemandOptions{Enabled: true, Burst: 3, Interval: time.Hour}})
	m.Update(View{Routed: []string{"*.od.test", "exact.test"}})
	if _, err := dial(t, serverConfig(m), &tls.Config{ServerName: "a.od.test", RootCAs: roots}); err != nil {
		t.Fatalf("first on-demand handshake: %v", err)
	}
	start := time.Now()
	if _, err := dial(t, serverConfig(m), &tls.Config{ServerName: "evil.test", RootCAs: roots}); err == nil {
		t.Fatal("unrouted name got a certificate")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("denied handshake took %s", d)
	}
	if st := m.Stats(); st.Obtaining != 1 || st.OnDemandDenied != 1 {
		t.Fatalf("stats %+v: want one issuance (a.od.test) and one denial", st)
	}

	var ok atomic.Int32
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := dial(t, serverConfig(m), &tls.Config{ServerName: fmt.Sprintf("r%d.od.test", i), RootCAs: roots}); err == nil {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := ok.Load(); n != 2 {
		t.Fatalf("%d flood handshakes succeeded, want the 2 tokens left", n)
	}
	if st := m.Stats(); st.Obtained != 3 || st.RateLimited != 10 {
		t.Fatalf("stats %+v: want 3 obtained, 10 rate-limited", st)
	}
}

// handshakeBench runs full TLS 1.3 handshakes over an in-memory pipe.
func handshakeBench(b *testing.B, srv *tls.Config, name string, roots *x509.CertPool) {
	cli := &tls.Config{ServerName: name, RootCAs: roots, ClientSessionCache: nil}
	b.ReportAllocs()
	for b.Loop() {
		c1, c2 := net.Pipe()
		done := make(chan error, 1)
		go func() { done <- tls.Server(c1, srv).Handshake() }()
		if err := tls.Client(c2, cli).Handshake(); err != nil {
			b.Fatal(err)
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		c1.Close()
		c2.Close()
	}
}

// BenchmarkCertificate compares a static certificate with a managed one:
// the GetCertificate lookup alone, and a whole handshake.
func BenchmarkCertificate(b *testing.B) {
	static, staticRoots := staticStore(b, "static.test")
	m, roots := startLocal(b, Options{})
	m.Update(View{Static: static, Managed: []string{"managed.test"}})
	waitHandshake(b, m, "managed.test", roots)
	for _, tc := range []struct {
		name  string
		roots *x509.CertPool
	}{{"static.test", staticRoots}, {"managed.test", roots}} {
		kind := tc.name[:len(tc.name)-len(".test")]
		b.Run("lookup/"+kind, func(b *testing.B) {
			hello := &tls.ClientHelloInfo{ServerName: tc.name}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.GetCertificate(hello); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("handshake/"+kind, func(b *testing.B) {
			handshakeBench(b, serverConfig(m), tc.name, tc.roots)
		})
	}
}

// A name dropped from the view stops being served and maintained; when it
// comes back, its certificate is loaded from storage, not issued again.
func TestManagedNameRemovedAndBack(t *testing.T) {
	m, roots := startLocal(t, Options{})
	m.Update(View{Managed: []string{"a.test"}})
	waitHandshake(t, m, "a.test", roots)
	m.Update(View{})
	if _, err := dial(t, serverConfig(m), &tls.Config{ServerName: "a.test", RootCAs: roots}); err == nil {
		t.Fatal("a.test still served after it left the view")
	}
	m.Update(View{Managed: []string{"a.test"}})
	waitHandshake(t, m, "a.test", roots)
	if st := m.Stats(); st.Obtained != 1 {
		t.Fatalf("stats %+v: want the first certificate reused", st)
	}
}

func TestEventsCounted(t *testing.T) {
	m := newTestManager(t, OnDemandOptions{})
	ctx := context.Background()
	m.onEvent(ctx, "cert_obtaining", map[string]any{"identifier": "a.test"})
	m.onEvent(ctx, "cert_obtained", map[string]any{"identifier": "a.test", "renewal": false})
	m.onEvent(ctx, "cert_obtained", map[string]any{"identifier": "a.test", "renewal": true})
	m.onEvent(ctx, "cert_failed", map[string]any{"identifier": "b.test", "error": errors.New("boom")})
	m.onEvent(ctx, "cached_managed_cert", nil)
	if st := m.Stats(); st != (Stats{Obtaining: 1, Obtained: 1, Renewed: 1, Failed: 1}) {
		t.Fatalf("stats %+v", st)
	}
}

// A managed certificate is renewed in the background before it expires,
// and the renewal is counted. (Leaves live 4 s here instead of 7 days.)
func TestManagedRenewal(t *testing.T) {
	m, err := New(Options{StoragePath: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	m.local.leafLife = 4 * time.Second
	m.renewCheck = 100 * time.Millisecond
	if err := m.Start(context.Background(), ListenPorts{}); err != nil {
		t.Fatal(err)
	}
	root, _ := m.LocalCA().Root(context.Background())
	roots := poolOf(root)
	m.Update(View{Managed: []string{"a.test"}})
	first := waitHandshake(t, m, "a.test", roots).PeerCertificates[0]
	deadline := time.Now().Add(20 * time.Second)
	for m.Stats().Renewed == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no renewal within 20s; stats %+v", m.Stats())
		}
		time.Sleep(50 * time.Millisecond)
	}
	second := waitHandshake(t, m, "a.test", roots).PeerCertificates[0]
	if !second.NotAfter.After(first.NotAfter) {
		t.Fatalf("served certificate not renewed: NotAfter %s, first %s", second.NotAfter, first.NotAfter)
	}
}
