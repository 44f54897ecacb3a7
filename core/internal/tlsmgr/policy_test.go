package tlsmgr

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"github.com/sluicegw/sluice/internal/testcert"
)

// must turns a testcert constructor's (pair, error) into a pair, failing t.
func must(t testing.TB) func(*testcert.Pair, error) *testcert.Pair {
	return func(p *testcert.Pair, err error) *testcert.Pair {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
}

func parseCRL(t testing.TB, data []byte) *x509.RevocationList {
	t.Helper()
	b, _ := pem.Decode(data)
	crl, err := x509.ParseRevocationList(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return crl
}

// TestClientAuthModes runs real handshakes for every verify mode against
// client certificates that are good, missing, from another CA, expired,
// revoked, or too deep.
func TestClientAuthModes(t *testing.T) {
	mk := must(t)
	serverCA := mk(testcert.CA("server ca"))
	hosts := []string{"on.test", "optional.test", "noca.test", "off.test", "deep.test", "crl.test", "unknown.test"}
	server := mk(testcert.Leaf(serverCA, hosts, testcert.Options{}))
	ca := mk(testcert.CA("client ca"))
	other := mk(testcert.CA("other ca"))
	inter := mk(testcert.Intermediate(ca, "client intermediate"))
	good := mk(testcert.Leaf(ca, []string{"alice"}, testcert.Options{Client: true}))
	revoked := mk(testcert.Leaf(ca, []string{"mallory"}, testcert.Options{Client: true}))
	wrongCA := mk(testcert.Leaf(other, []string{"eve"}, testcert.Options{Client: true}))
	expired := mk(testcert.Leaf(ca, []string{"old"}, testcert.Options{Client: true,
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)}))
	deep := mk(testcert.Leaf(inter, []string{"deep"}, testcert.Options{Client: true}))
	crlPEM, err := testcert.CRL(ca, revoked.Cert)
	if err != nil {
		t.Fatal(err)
	}

	cert := server.TLSCertificate()
	base := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	pol, err := NewPolicies(base, map[string]HostPolicy{
		"on.test":       {ClientAuth: ClientAuth{Verify: VerifyOn, CAs: poolOf(ca.Cert)}},
		"optional.test": {ClientAuth: ClientAuth{Verify: VerifyOptional, CAs: poolOf(ca.Cert)}},
		"noca.test":     {ClientAuth: ClientAuth{Verify: VerifyOptionalNoCA}},
		"off.test":      {},
		"deep.test":     {ClientAuth: ClientAuth{Verify: VerifyOn, CAs: poolOf(ca.Cert), Depth: 2}},
		"crl.test":      {ClientAuth: ClientAuth{Verify: VerifyOn, CAs: poolOf(ca.Cert), CRLs: []*x509.RevocationList{parseCRL(t, crlPEM)}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := base.Clone()
	srv.GetConfigForClient = pol.ConfigForClient

	type client struct {
		name  string
		chain []tls.Certificate
	}
	none := client{"none", nil}
	withCert := func(name string, p *testcert.Pair, chain ...*testcert.Pair) client {
		return client{name, []tls.Certificate{p.TLSCertificate(chain...)}}
	}
	cGood, cWrong, cExpired, cRevoked := withCert("good", good), withCert("wrong ca", wrongCA), withCert("expired", expired), withCert("revoked", revoked)
	cDeep := withCert("deep", deep, inter)

	for _, tc := range []struct {
		host     string
		client   client
		ok       bool
		verified bool // the server saw a verified chain
	}{
		{"on.test", none, false, false},
		{"on.test", cGood, true, true},
		{"on.test", cWrong, false, false},
		{"on.test", cExpired, false, false},
		{"on.test", cDeep, false, false}, // depth 1: the intermediate is one CA too many
		{"optional.test", none, true, false},
		{"optional.test", cGood, true, true},
		{"optional.test", cWrong, false, false},
		{"optional.test", cExpired, false, false},
		{"noca.test", none, true, false},
		{"noca.test", cWrong, true, false}, // accepted, not verified
		{"noca.test", cExpired, true, false},
		{"off.test", cWrong, true, false},
		{"off.test", none, true, false},
		{"deep.test", cDeep, true, true},
		{"deep.test", cGood, true, true},
		{"crl.test", cGood, true, true},
		{"crl.test", cRevoked, false, false},
		{"on.test", cRevoked, true, true}, // the CRL belongs to crl.test only
		{"unknown.test", none, true, false},
	} {
		for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			name := tc.host + "/" + tc.client.name + "/" + tls.VersionName(version)
			t.Run(name, func(t *testing.T) {
				var sawChains int
				s := srv.Clone()
				s.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
					c, err := pol.ConfigForClient(h)
					if c == nil || err != nil {
						return c, err
					}
					c = c.Clone()
					inner := c.VerifyConnection
					c.VerifyConnection = func(cs tls.ConnectionState) error {
						if inner != nil {
							if err := inner(cs); err != nil {
								return err
							}
						}
						sawChains = len(cs.VerifiedChains)
						return nil
					}
					return c, nil
				}
				_, err := dial(t, s, &tls.Config{
					ServerName: tc.host, RootCAs: poolOf(serverCA.Cert),
					MinVersion: version, MaxVersion: version,
					// Send the certificate even when its CA is not one the
					// server lists (Go's client would otherwise send none).
					GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
						if len(tc.client.chain) == 0 {
							return &tls.Certificate{}, nil
						}
						return &tc.client.chain[0], nil
					},
				})
				if (err == nil) != tc.ok {
					t.Fatalf("handshake error %v, want ok=%v", err, tc.ok)
				}
				if tc.ok && (sawChains > 0) != tc.verified {
					t.Fatalf("verified chains %d, want verified=%v", sawChains, tc.verified)
				}
			})
		}
	}
}

// The acme-tls/1 handshake of TLS-ALPN-01 validation is never asked for a
// client certificate, even on a host that requires one.
func TestClientAuthACMEExempt(t *testing.T) {
	ca := must(t)(testcert.CA("client ca"))
	pol, err := NewPolicies(&tls.Config{}, map[string]HostPolicy{
		"on.test": {ClientAuth: ClientAuth{Verify: VerifyOn, CAs: poolOf(ca.Cert)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := pol.ConfigForClient(&tls.ClientHelloInfo{ServerName: "on.test", SupportedProtos: []string{ACMEProtocol}})
	if c != nil {
		t.Fatal("acme-tls/1 handshake got the mTLS config")
	}
	c, _ = pol.ConfigForClient(&tls.ClientHelloInfo{ServerName: "ON.test", SupportedProtos: []string{"h2", ACMEProtocol}})
	if c == nil || c.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Fatal("a normal handshake did not get the mTLS config")
	}
	if !c.SessionTicketsDisabled {
		t.Fatal("mTLS config allows session resumption")
	}
}

func TestPoliciesLookupAndErrors(t *testing.T) {
	pol, err := NewPolicies(&tls.Config{}, map[string]HostPolicy{
		"a.test":   {TLS: true, Redirect: true},
		"*.w.test": {HSTS: "max-age=1"},
		"bad.test": {ClientAuth: ClientAuth{Verify: VerifyOn}}, // no CAs
		"":         {TLS: true},
	})
	if err == nil {
		t.Fatal("a host requiring client certificates without CAs built")
	}
	if p := pol.Lookup("A.test"); p == nil || !p.Redirect {
		t.Errorf("a.test: %+v", p)
	}
	if p := pol.Lookup("x.w.test"); p == nil || p.HSTS != "max-age=1" {
		t.Errorf("x.w.test: %+v", p)
	}
	if c, _ := pol.ConfigForClient(&tls.ClientHelloInfo{ServerName: "bad.test"}); c == nil || c.ClientAuth != tls.RequireAndVerifyClientCert || c.ClientCAs == nil {
		t.Error("bad.test does not fail closed")
	}
	for _, h := range []string{"w.test", "y.x.w.test", "", "other.test"} {
		if p := pol.Lookup(h); p != nil {
			t.Errorf("%q: got %+v, want none", h, p)
		}
	}
	var nilPol *Policies
	if nilPol.Lookup("a.test") != nil {
		t.Error("nil Policies found a host")
	}
	for in, want := range map[string]Verify{"": VerifyOff, "on": VerifyOn, "optional_no_ca": VerifyOptionalNoCA} {
		if got, err := ParseVerify(in); err != nil || got != want {
			t.Errorf("ParseVerify(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseVerify("yes"); err == nil {
		t.Error(`ParseVerify("yes") accepted`)
	}
}
