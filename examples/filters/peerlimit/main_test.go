package main

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/sluicegw/sluice/sdk/sdktest"
)

// The filter's logic, natively: go test (no wasm, no gateway).

func verified(spiffe string) *tls.ConnectionState {
	c := &x509.Certificate{Raw: []byte(spiffe), Subject: pkix.Name{CommonName: "alice"}}
	if spiffe != "" {
		u, _ := url.Parse(spiffe)
		c.URIs = []*url.URL{u}
	}
	return &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}, VerifiedChains: [][]*x509.Certificate{{c}}}
}

func TestIdentityAndLimit(t *testing.T) {
	h := sdktest.New(&filter{}, sdktest.Options{Config: []byte(`{"rate":1,"period_ms":60000,"burst":2}`)})
	for i, tc := range []struct {
		tls      *tls.ConnectionState
		status   int
		identity string
	}{
		{verified("spiffe://shop.test/web"), 200, "spiffe://shop.test/web"},
		{verified("spiffe://shop.test/web"), 200, "spiffe://shop.test/web"},
		{verified("spiffe://shop.test/web"), 429, ""}, // burst 2 used up
		{verified(""), 200, "CN=alice"},               // another identity, another bucket
		{nil, 200, "ip:192.0.2.1"},                    // no certificate: the client address
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.TLS = tc.tls
		res := h.Do(r)
		if res.Err != nil || res.Status != tc.status {
			t.Fatalf("request %d: status %d (%v), want %d", i, res.Status, res.Err, tc.status)
		}
		if tc.status == 200 && res.Upstream.Header.Get("X-Client-Identity") != tc.identity {
			t.Errorf("request %d: identity %q, want %q", i, res.Upstream.Header.Get("X-Client-Identity"), tc.identity)
		}
		if tc.status == 429 && res.Header.Get("Retry-After") != "60" {
			t.Errorf("request %d: Retry-After %q, want 60", i, res.Header.Get("Retry-After"))
		}
	}
	if got := h.Metrics()["denied_total"]; got != 1 {
		t.Errorf("denied_total = %d, want 1", got)
	}
}

func TestRequireCert(t *testing.T) {
	h := sdktest.New(&filter{}, sdktest.Options{Config: []byte(`{"require_cert":true}`)})
	if res := h.Do(httptest.NewRequest("GET", "/", nil)); res.Status != 401 || res.Upstream != nil {
		t.Fatalf("no certificate: %d, want 401", res.Status)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.TLS = verified("spiffe://shop.test/web")
	if res := h.Do(r); res.Status != 200 || res.Upstream.Header.Get("X-Client-Cert") != "verified" {
		t.Fatalf("verified certificate: %d %v", res.Status, res.Header)
	}
}

func TestBadConfig(t *testing.T) {
	h := sdktest.New(&filter{}, sdktest.Options{Config: []byte(`{"rate":"lots"}`)})
	if res := h.Do(httptest.NewRequest("GET", "/", nil)); res.Status != 500 || len(res.Logs) == 0 {
		t.Fatalf("status %d logs %q", res.Status, res.Logs)
	}
}

func TestStoreDownLetsTrafficThrough(t *testing.T) {
	h := sdktest.New(&filter{}, sdktest.Options{StoreDown: true})
	if res := h.Do(httptest.NewRequest("GET", "/", nil)); res.Status != 200 || len(res.Logs) != 1 {
		t.Fatalf("status %d logs %q", res.Status, res.Logs)
	}
}

func TestHostOf(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1:1234": "192.0.2.1", "[::1]:80": "::1", "192.0.2.1": "192.0.2.1", "[::1]": "::1", "": "",
	} {
		if got := hostOf(in); got != want {
			t.Errorf("hostOf(%q) = %q, want %q", in, got, want)
		}
	}
}
