package wasm

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/hex"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"
)

type testCert struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	tls  tls.Certificate
}

// makeCert issues a certificate for tmpl signed by parent (self-signed if nil).
func makeCert(t *testing.T, tmpl *x509.Certificate, parent *testCert) *testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(time.Hour)
	signer, signerCert := key, tmpl
	if parent != nil {
		signer, signerCert = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCert{cert: c, key: key, tls: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: c}}
}

func TestSluiceExtension(t *testing.T) {
	metrics := &MemoryMetrics{}
	h := newHost(t, Config{Metrics: metrics})
	f := newFilter(t, h, FilterSpec{Name: "ext", Module: guest("sluice")})

	ca := makeCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "test CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}, nil)
	server := makeCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, ca)
	spiffe, _ := url.Parse("spiffe://example.org/ns/default/sa/web")
	client := makeCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "web"}, URIs: []*url.URL{spiffe},
		DNSNames: []string{"web.default.svc"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, ca)

	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	srv := httptest.NewUnstartedServer(f.Middleware(&upstream{}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{server.tls}, ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{client.tls}}}}
	t.Cleanup(hc.CloseIdleConnections)

	want := []struct {
		code int
		body string
	}{
		{200, "2|1|1|spiffe://example.org/ns/default/sa/web"},
		{200, "2|1|2|spiffe://example.org/ns/default/sa/web"},
		{429, ""}, // burst 2, 1 per minute
	}
	for i, w := range want {
		resp, body := do(t, hc, http.MethodGet, srv.URL+"/", nil, nil)
		if resp.StatusCode != w.code || body != w.body {
			t.Errorf("request %d: %d %q, want %d %q", i, resp.StatusCode, body, w.code, w.body)
		}
	}
	if got := metrics.Get("ext", "requests_total"); got != 3 {
		t.Errorf("requests_total = %d, want 3", got)
	}
	// The store is namespaced by filter name.
	if v, _ := h.store.Add(context.Background(), "ext\x00hits", 0); v != 2 {
		t.Errorf("store counter ext/hits = %d, want 2", v)
	}
}

// TestTLSPeerFields checks every tls_peer_get field and tls_peer_status by
// calling the host functions on a real guest memory.
func TestTLSPeerFields(t *testing.T) {
	ca := makeCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "test CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}, nil)
	spiffe, _ := url.Parse("spiffe://example.org/web")
	other, _ := url.Parse("https://example.org/id")
	c := makeCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "web", Organization: []string{"Shop"}},
		URIs: []*url.URL{other, spiffe}, DNSNames: []string{"a.example", "b.example"}}, ca)
	sum := sha256.Sum256(c.cert.Raw)

	fx := newFixture(t)
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c.cert}}
	fx.begin(r)

	if got := fx.call(tlsPeerStatus); got != peerUnverified {
		t.Errorf("status = %d, want unverified", got)
	}
	r.TLS.VerifiedChains = [][]*x509.Certificate{{c.cert, ca.cert}}
	if got := fx.call(tlsPeerStatus); got != peerVerified {
		t.Errorf("status = %d, want verified", got)
	}
	for field, want := range map[int][]string{
		peerSubject:  {"CN=web,O=Shop"},
		peerIssuer:   {"CN=test CA"},
		peerDNSSANs:  {"a.example", "b.example"},
		peerURISANs:  {"https://example.org/id", "spiffe://example.org/web"},
		peerSPIFFEID: {"spiffe://example.org/web"},
		peerSHA256:   {hex.EncodeToString(sum[:])},
	} {
		if got := fx.list(tlsPeerGet, uint64(field)); !equalStrings(got, want) {
			t.Errorf("field %d = %q, want %q", field, got, want)
		}
	}
	r.TLS = nil
	if got := fx.call(tlsPeerStatus); got != peerNone {
		t.Errorf("no TLS: status = %d", got)
	}
	if got := fx.list(tlsPeerGet, peerSubject); len(got) != 0 {
		t.Errorf("no TLS: subject = %q", got)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestMemoryStore(t *testing.T) {
	s := NewMemoryStore()
	now := time.Unix(1000, 0)
	s.now = func() time.Time { return now }
	l := Limit{Rate: 2, Period: time.Second, Burst: 3}
	ctx := context.Background()
	for i, want := range []Decision{{true, 2, 0}, {true, 1, 0}, {true, 0, 0}, {false, 0, 500 * time.Millisecond}} {
		if got, _ := s.Take(ctx, "k", l); got != want {
			t.Errorf("take %d = %+v, want %+v", i, got, want)
		}
	}
	now = now.Add(500 * time.Millisecond)
	if got, _ := s.Take(ctx, "k", l); !got.Allowed {
		t.Errorf("after refill: %+v", got)
	}
	if got, _ := s.Take(ctx, "other", l); !got.Allowed || got.Remaining != 2 {
		t.Errorf("independent key: %+v", got)
	}
	if v, _ := s.Add(ctx, "c", 5); v != 5 {
		t.Errorf("add = %d", v)
	}
	if v, _ := s.Add(ctx, "c", -2); v != 3 {
		t.Errorf("add = %d", v)
	}
}

// TestTLSPeerBatch: sluice.tls_peer returns the status and every field of
// tls_peer_get in one buffer, the same values field by field, and nothing
// but the status without a certificate.
func TestTLSPeerBatch(t *testing.T) {
	fx := newFixture(t)
	u1, _ := url.Parse("https://web.test/x")
	u2, _ := url.Parse("spiffe://shop.test/web")
	c := &x509.Certificate{Raw: []byte("der"), Subject: pkix.Name{CommonName: "web", Organization: []string{"Shop"}},
		Issuer: pkix.Name{CommonName: "ca"}, DNSNames: []string{"a.test", "b.test"}, URIs: []*url.URL{u1, u2}}
	for _, tc := range []struct {
		name   string
		tls    *tls.ConnectionState
		status uint64
	}{
		{"none", nil, peerNone},
		{"unverified", &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}}, peerUnverified},
		{"verified", &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}, VerifiedChains: [][]*x509.Certificate{{c}}}, peerVerified},
		{"verified again (cached)", &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}, VerifiedChains: [][]*x509.Certificate{{c}}}, peerVerified},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.TLS = tc.tls
			fx.begin(r)
			defer fx.in.end()
			if n := uint32(fx.call(tlsPeer, 0, 0)); tc.tls != nil && n == 0 {
				t.Fatal("length 0 with a certificate")
			}
			res := fx.call(tlsPeer, 1024, 60000)
			if res>>32 != tc.status {
				t.Fatalf("status %d, want %d", res>>32, tc.status)
			}
			b, _ := fx.in.mem.Read(1024, uint32(res))
			var got [][]string
			for len(b) >= 4 {
				count := binary.LittleEndian.Uint32(b)
				b = b[4:]
				var vs []string
				for range count {
					i := bytes.IndexByte(b, 0)
					vs, b = append(vs, string(b[:i])), b[i+1:]
				}
				got = append(got, vs)
			}
			if tc.tls == nil {
				if len(got) != 0 || len(b) != 0 {
					t.Fatalf("fields %q without a certificate", got)
				}
				return
			}
			if len(got) != peerSHA256+1 || len(b) != 0 {
				t.Fatalf("fields %q (rest %q)", got, b)
			}
			for f := range uint64(peerSHA256 + 1) {
				if want := fx.list(tlsPeerGet, f); !slices.Equal(got[f], want) {
					t.Errorf("field %d: %q, tls_peer_get says %q", f, got[f], want)
				}
			}
		})
	}
}

// TestRoute: sluice.route returns the WithRoute value of the request's
// context, "" without one.
func TestRoute(t *testing.T) {
	fx := newFixture(t)
	for _, route := range []string{"default/web shop.test Prefix /cart", ""} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if route != "" {
			r = r.WithContext(WithRoute(r.Context(), route))
		}
		fx.begin(r)
		if n := fx.call(routeFn, 1024, 4); route != "" && n != uint64(len(route)) {
			t.Fatalf("length %d with a short buffer, want %d", n, len(route))
		}
		n := uint32(fx.call(routeFn, 1024, 1000))
		b, _ := fx.in.mem.Read(1024, n)
		if string(b) != route {
			t.Errorf("route %q, want %q", b, route)
		}
		fx.in.end()
	}
	mustTrap(t, "sluice.route: no request in flight", func() { fx.call(routeFn, 0, 0) })
}
