package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/internal/testcert"
)

// TestUpstreamTLSVerify: with backend TLS settings the backend's
// certificate is checked against the CA and the name, SNI is sent, and a
// client certificate is presented; a backend that fails the check gets
// 502. Each setting has its own transport, so a connection verified for
// one route is never reused by a route that asks for another check.
func TestUpstreamTLSVerify(t *testing.T) {
	ca, err := testcert.CA("backend ca")
	if err != nil {
		t.Fatal(err)
	}
	otherCA, err := testcert.CA("other ca")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := testcert.Leaf(ca, []string{"web.default.svc"}, testcert.Options{})
	if err != nil {
		t.Fatal(err)
	}
	clientCA, err := testcert.CA("gateway client ca")
	if err != nil {
		t.Fatal(err)
	}
	client, err := testcert.Leaf(clientCA, []string{"gateway"}, testcert.Options{Client: true})
	if err != nil {
		t.Fatal(err)
	}
	clientPool := x509.NewCertPool()
	clientPool.AddCert(clientCA.Cert)

	be := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cn := ""
		if len(r.TLS.PeerCertificates) > 0 {
			cn = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		fmt.Fprintf(w, "sni=%s client=%s proto=%d", r.TLS.ServerName, cn, r.ProtoMajor)
	}))
	be.TLS = &tls.Config{Certificates: []tls.Certificate{leaf.TLSCertificate()}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: clientPool}
	be.EnableHTTP2 = true
	be.StartTLS()
	t.Cleanup(be.Close)

	bundle := func(p *testcert.Pair) *model.CABundle {
		return &model.CABundle{Source: model.ObjectRef{Kind: "Secret", Namespace: "default", Name: "ca"}, PEM: p.CertPEM}
	}
	g := newGateway(t, Options{})
	for _, tc := range []struct {
		name  string
		proto model.Protocol
		tls   *model.UpstreamTLS
		code  int
		body  string
	}{
		{"no settings: not verified, no SNI", model.ProtocolHTTPS, nil, 200, "sni= client= proto=1"},
		{"verified with name", model.ProtocolHTTPS, &model.UpstreamTLS{Verify: true, CA: bundle(ca), ServerName: "web.default.svc"}, 200, "sni=web.default.svc client= proto=1"},
		{"verified over h2", model.ProtocolGRPCS, &model.UpstreamTLS{Verify: true, CA: bundle(ca), ServerName: "web.default.svc"}, 200, "sni=web.default.svc client= proto=2"},
		{"chain only, no name", model.ProtocolHTTPS, &model.UpstreamTLS{Verify: true, CA: bundle(ca)}, 200, "sni= client= proto=1"},
		{"client certificate", model.ProtocolHTTPS, &model.UpstreamTLS{ClientCert: &model.KeyPair{CertPEM: client.CertPEM, KeyPEM: client.KeyPEM}}, 200, "sni= client=gateway proto=1"},
		{"wrong CA", model.ProtocolHTTPS, &model.UpstreamTLS{Verify: true, CA: bundle(otherCA), ServerName: "web.default.svc"}, 502, ""},
		{"wrong CA, chain only", model.ProtocolHTTPS, &model.UpstreamTLS{Verify: true, CA: bundle(otherCA)}, 502, ""},
		{"wrong name", model.ProtocolHTTPS, &model.UpstreamTLS{Verify: true, CA: bundle(ca), ServerName: "db.default.svc"}, 502, ""},
		{"system roots", model.ProtocolHTTPS, &model.UpstreamTLS{Verify: true, ServerName: "web.default.svc"}, 502, ""},
		{"bad CA PEM", model.ProtocolHTTPS, &model.UpstreamTLS{Verify: true, CA: &model.CABundle{PEM: []byte("junk")}}, 502, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &model.Traffic{Protocol: tc.proto, UpstreamTLS: tc.tls}
			if tc.tls != nil {
				tc.tls.Key = tc.name // distinct settings, distinct keys
			}
			g.load(t, withTraffic(backend("default/web:443", addr(be)), tr))
			r := g.get(t, "x", "/")
			if r.code != tc.code || tc.code == 200 && r.body != tc.body {
				t.Fatalf("got %d %q, want %d %q", r.code, r.body, tc.code, tc.body)
			}
		})
	}
	// The verified route and the failing one alternate on one backend:
	// each keeps its own connections and its own answer.
	good := &model.UpstreamTLS{Verify: true, CA: bundle(ca), ServerName: "web.default.svc", Key: "good"}
	bad := &model.UpstreamTLS{Verify: true, CA: bundle(otherCA), ServerName: "web.default.svc", Key: "bad"}
	for i := range 4 {
		u, want := good, 200
		if i%2 == 1 {
			u, want = bad, 502
		}
		g.load(t, withTraffic(backend("default/web:443", addr(be)), &model.Traffic{Protocol: model.ProtocolHTTPS, UpstreamTLS: u}))
		if r := g.get(t, "x", "/"); r.code != want {
			t.Fatalf("round %d: got %d %q, want %d", i, r.code, r.body, want)
		}
	}
}

// Keyed transports unused for tlsIdleEvict are dropped when another one is
// made; used ones stay.
func TestUpstreamTLSEviction(t *testing.T) {
	u := newUpstreamTransports(Options{})
	t.Cleanup(u.closeIdle)
	get := func(key string) *http.Transport {
		tr, err := u.forTLS(&model.UpstreamTLS{Key: key}, false)
		if err != nil || tr == nil {
			t.Fatalf("forTLS(%s) = %v, %v", key, tr, err)
		}
		return tr
	}
	a, b := get("a"), get("b")
	if a == b || get("a") != a {
		t.Fatal("one transport per key, reused for the same key")
	}
	u.keyed[tlsKey{"a", false}].lastUsed.Add(-int64(2 * tlsIdleEvict))
	get("c")
	if _, ok := u.keyed[tlsKey{"a", false}]; ok {
		t.Fatal("the idle transport was kept")
	}
	if get("b") != b || len(u.keyed) != 2 {
		t.Fatalf("the used transport was dropped (%d left)", len(u.keyed))
	}
}

// Hammer: many goroutines asking for a few keys get one transport per key
// and HTTP version.
func TestUpstreamTLSHammer(t *testing.T) {
	u := newUpstreamTransports(Options{})
	t.Cleanup(u.closeIdle)
	var wg sync.WaitGroup
	got := make([]map[tlsKey]*http.Transport, 16)
	for g := range got {
		got[g] = map[tlsKey]*http.Transport{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				k := tlsKey{fmt.Sprint("k", i%4), (i/4)%2 == 0}
				tr, err := u.forTLS(&model.UpstreamTLS{Key: k.key}, k.h2)
				if err != nil || tr == nil {
					t.Errorf("forTLS: %v, %v", tr, err)
					return
				}
				if prev, ok := got[g][k]; ok && prev != tr {
					t.Errorf("%v: two transports", k)
					return
				}
				got[g][k] = tr
			}
		}()
	}
	wg.Wait()
	for g := 1; g < len(got); g++ {
		for k, tr := range got[g] {
			if got[0][k] != tr {
				t.Fatalf("goroutines %d and 0 got different transports for %v", g, k)
			}
		}
	}
	if len(got[0]) != 8 || len(u.keyed) != 8 {
		t.Fatalf("%d and %d transports, want 4 keys × 2 versions", len(got[0]), len(u.keyed))
	}
}
