//go:build !wasip1

package mtlsidentity

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/sluicegw/sluice/sdk/sdktest"
)

func cert(spiffe, cn string, verified bool, dns ...string) *tls.ConnectionState {
	c := &x509.Certificate{Raw: []byte(spiffe + cn), Subject: pkix.Name{CommonName: cn, Organization: []string{"Shop"}},
		Issuer: pkix.Name{CommonName: "client ca"}, DNSNames: dns}
	if spiffe != "" {
		u, _ := url.Parse(spiffe)
		c.URIs = []*url.URL{u}
	}
	cs := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}}
	if verified {
		cs.VerifiedChains = [][]*x509.Certificate{{c}}
	}
	return cs
}

func TestMTLSIdentity(t *testing.T) {
	const config = `{
	  "allow": [{"spiffe_id": "spiffe://shop.test/web"}, {"trust_domain": "partner.test", "cn": "api-.*"}, {"dns": "*.svc.test"}],
	  "deny": [{"spiffe_prefix": "spiffe://shop.test/web/old"}],
	  "forward": "xfcc"
	}`
	for _, tc := range []struct {
		name   string
		tls    *tls.ConnectionState
		status int
	}{
		{"no certificate", nil, 401},
		{"unverified", cert("spiffe://shop.test/web", "web", false), 401},
		{"allowed spiffe id", cert("spiffe://shop.test/web", "web", true), 200},
		{"other spiffe id", cert("spiffe://shop.test/db", "db", true), 403},
		{"trust domain and cn", cert("spiffe://partner.test/x", "api-1", true), 200},
		{"trust domain, other cn", cert("spiffe://partner.test/x", "web", true), 403},
		{"wildcard dns", cert("", "x", true, "a.svc.test"), 200},
		{"wildcard dns, two labels", cert("", "x", true, "a.b.svc.test"), 403},
		{"denied prefix", cert("spiffe://shop.test/web/old", "web", true), 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := sdktest.New(&filter{}, sdktest.Options{Config: []byte(config)})
			r := httptest.NewRequest("GET", "/", nil)
			r.TLS = tc.tls
			r.Header.Set("X-Forwarded-Client-Cert", "By=spoofed")
			r.Header.Set("Ssl-Client-Verify", "SUCCESS")
			res := h.Do(r)
			if res.Err != nil || res.Status != tc.status {
				t.Fatalf("status %d (%v), want %d", res.Status, res.Err, tc.status)
			}
			if tc.status != 200 {
				if res.Upstream != nil {
					t.Fatal("a refused request reached the upstream")
				}
				return
			}
			xfcc := res.Upstream.Header.Get("X-Forwarded-Client-Cert")
			if xfcc == "" || xfcc == "By=spoofed" || res.Upstream.Header.Get("Ssl-Client-Verify") != "" {
				t.Errorf("upstream XFCC %q, ssl-client-verify %q", xfcc, res.Upstream.Header.Get("Ssl-Client-Verify"))
			}
		})
	}
}

func TestForwardSSLClientAndStatuses(t *testing.T) {
	h := sdktest.New(&filter{}, sdktest.Options{Config: []byte(`{"forward":"ssl-client","no_cert_status":403}`)})
	if res := h.Do(httptest.NewRequest("GET", "/", nil)); res.Status != 403 {
		t.Fatalf("no certificate: %d, want the configured 403", res.Status)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.TLS = cert("", "alice", true)
	res := h.Do(r)
	if res.Status != 200 || res.Upstream.Header.Get("Ssl-Client-Verify") != "SUCCESS" || res.Upstream.Header.Get("Ssl-Client-Subject-Dn") != "CN=alice,O=Shop" {
		t.Fatalf("status %d, upstream headers %v", res.Status, res.Upstream.Header)
	}
}

func TestBadConfig(t *testing.T) {
	h := sdktest.New(&filter{}, sdktest.Options{Config: []byte(`{"allow":[{}]}`)})
	if res := h.Do(httptest.NewRequest("GET", "/", nil)); res.Status != 500 || len(res.Logs) != 1 {
		t.Fatalf("status %d logs %q", res.Status, res.Logs)
	}
}
