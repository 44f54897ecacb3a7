//go:build !wasip1

package ratelimit

import (
	"crypto/tls"
	"crypto/x509"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sluicegw/sluice/sdk/sdktest"
)

// The filter's logic, natively, through sdktest's simulated host.

func TestBurstThen429(t *testing.T) {
	now := time.Unix(1000, 0)
	h := sdktest.New(&filter{}, sdktest.Options{
		Config: []byte(`{"rate":1,"period":"10s","burst":2,"key":"client_ip"}`),
		Now:    func() time.Time { return now },
	})
	for i, want := range []struct {
		status    int
		rateLimit string
		retry     string
	}{
		{200, `"default";r=1;t=0`, ""},
		{200, `"default";r=0;t=0`, ""},
		{429, `"default";r=0;t=10`, "10"},
	} {
		res := h.Do(httptest.NewRequest("GET", "/", nil))
		if res.Err != nil || res.Status != want.status {
			t.Fatalf("request %d: status %d (%v), want %d", i, res.Status, res.Err, want.status)
		}
		if got := res.Header.Get("RateLimit"); got != want.rateLimit {
			t.Errorf("request %d: RateLimit %q, want %q", i, got, want.rateLimit)
		}
		if got := res.Header.Get("Retry-After"); got != want.retry {
			t.Errorf("request %d: Retry-After %q, want %q", i, got, want.retry)
		}
		if got := res.Header.Get("RateLimit-Policy"); got != `"default";q=1;w=10` {
			t.Errorf("request %d: RateLimit-Policy %q", i, got)
		}
		if (res.Upstream != nil) != (want.status == 200) {
			t.Errorf("request %d: reached the upstream: %v", i, res.Upstream != nil)
		}
	}
	now = now.Add(10 * time.Second) // one token back
	if res := h.Do(httptest.NewRequest("GET", "/", nil)); res.Status != 200 {
		t.Fatalf("after the period: %d, want 200", res.Status)
	}
	if got := h.Metrics()["limited_total"]; got != 1 {
		t.Errorf("limited_total = %d, want 1", got)
	}
}

func verified(spiffe string) *tls.ConnectionState {
	u, _ := url.Parse(spiffe)
	c := &x509.Certificate{Raw: []byte(spiffe), URIs: []*url.URL{u}}
	return &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}, VerifiedChains: [][]*x509.Certificate{{c}}}
}

// Each case sends its requests to a fresh filter with burst 1: the first
// is allowed, and the second is limited exactly when both share a key.
func TestKeys(t *testing.T) {
	type req struct {
		remote string
		header map[string]string
		tls    *tls.ConnectionState
	}
	a := req{remote: "192.0.2.1:1000"}
	for _, tc := range []struct {
		name   string
		config string
		first  req
		second req
		shared bool
	}{
		{"client ip: same address, other port", `{"rate":1,"key":"client_ip"}`, a, req{remote: "192.0.2.1:2000"}, true},
		{"client ip: other address", `{"rate":1,"key":"client_ip"}`, a, req{remote: "192.0.2.2:1000"}, false},
		{"xff from an untrusted peer is ignored", `{"rate":1}`, a,
			req{remote: "192.0.2.1:1000", header: map[string]string{"X-Forwarded-For": "198.51.100.7"}}, true},
		{"xff from a trusted proxy names the client", `{"rate":1,"trusted_proxies":["192.0.2.0/24"]}`,
			req{remote: "192.0.2.1:1000", header: map[string]string{"X-Forwarded-For": "198.51.100.7"}},
			req{remote: "192.0.2.9:1000", header: map[string]string{"X-Forwarded-For": "198.51.100.8, 192.0.2.3"}}, false},
		{"xff: two proxies, same client", `{"rate":1,"trusted_proxies":["192.0.2.0/24"]}`,
			req{remote: "192.0.2.1:1000", header: map[string]string{"X-Forwarded-For": "198.51.100.7"}},
			req{remote: "192.0.2.9:1000", header: map[string]string{"X-Forwarded-For": "10.9.9.9, 198.51.100.7, 192.0.2.3"}}, true},
		{"header", `{"rate":1,"key":"header:X-Api-Key"}`,
			req{remote: "192.0.2.1:1", header: map[string]string{"X-Api-Key": "k1"}},
			req{remote: "192.0.2.2:1", header: map[string]string{"X-Api-Key": "k1"}}, true},
		{"header: other value", `{"rate":1,"key":"header:X-Api-Key"}`,
			req{remote: "192.0.2.1:1", header: map[string]string{"X-Api-Key": "k1"}},
			req{remote: "192.0.2.1:1", header: map[string]string{"X-Api-Key": "k2"}}, false},
		{"route: everyone shares", `{"rate":1,"key":"route"}`, a, req{remote: "198.51.100.1:1"}, true},
		{"tls identity", `{"rate":1,"key":"tls_identity"}`,
			req{remote: "192.0.2.1:1", tls: verified("spiffe://shop.test/web")},
			req{remote: "192.0.2.2:1", tls: verified("spiffe://shop.test/web")}, true},
		{"tls identity: other id", `{"rate":1,"key":"tls_identity"}`,
			req{remote: "192.0.2.1:1", tls: verified("spiffe://shop.test/web")},
			req{remote: "192.0.2.1:1", tls: verified("spiffe://shop.test/api")}, false},
		{"tls identity: none falls back to the address", `{"rate":1,"key":"tls_identity"}`, a, req{remote: "192.0.2.2:1"}, false},
		{"huge header values are hashed, not refused", `{"rate":1,"key":"header:X-Api-Key"}`,
			req{remote: "192.0.2.1:1", header: map[string]string{"X-Api-Key": strings.Repeat("k", 5000)}},
			req{remote: "192.0.2.2:1", header: map[string]string{"X-Api-Key": strings.Repeat("k", 5000)}}, true},
		{"combination", `{"rate":1,"key":"client_ip+header:X-User"}`,
			req{remote: "192.0.2.1:1", header: map[string]string{"X-User": "u"}},
			req{remote: "192.0.2.1:1", header: map[string]string{"X-User": "v"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := sdktest.New(&filter{}, sdktest.Options{Config: []byte(tc.config)})
			var got []int
			for _, rq := range []req{tc.first, tc.second} {
				r := httptest.NewRequest("GET", "/", nil)
				r.RemoteAddr, r.TLS = rq.remote, rq.tls
				for k, v := range rq.header {
					r.Header.Set(k, v)
				}
				got = append(got, h.Do(r).Status)
			}
			want := []int{200, 200}
			if tc.shared {
				want[1] = 429
			}
			if got[0] != want[0] || got[1] != want[1] {
				t.Fatalf("statuses %v, want %v", got, want)
			}
		})
	}
}

func TestSeveralLimits(t *testing.T) {
	h := sdktest.New(&filter{}, sdktest.Options{Config: []byte(`{"limits":[
		{"name":"per-ip","rate":5,"period":"1m","key":"client_ip"},
		{"name":"global","rate":2,"period":"1m","key":"route"}]}`)})
	var statuses []int
	var res sdktest.Result
	for _, ip := range []string{"192.0.2.1:1", "192.0.2.2:1", "192.0.2.3:1"} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = ip
		res = h.Do(r)
		statuses = append(statuses, res.Status)
	}
	if statuses[0] != 200 || statuses[1] != 200 || statuses[2] != 429 {
		t.Fatalf("statuses %v, want [200 200 429]: the global limit", statuses)
	}
	if got := res.Header.Get("RateLimit"); got != `"global";r=0;t=30` {
		t.Errorf("RateLimit %q", got)
	}
	if got := res.Header.Get("RateLimit-Policy"); got != `"per-ip";q=5;w=60, "global";q=2;w=60` {
		t.Errorf("RateLimit-Policy %q", got)
	}
}

func TestStoreDown(t *testing.T) {
	for _, tc := range []struct {
		config string
		status int
	}{
		{`{"rate":1}`, 200},
		{`{"rate":1,"on_unavailable":"allow"}`, 200},
		{`{"rate":1,"on_unavailable":"deny"}`, 503},
	} {
		h := sdktest.New(&filter{}, sdktest.Options{Config: []byte(tc.config), StoreDown: true})
		if res := h.Do(httptest.NewRequest("GET", "/", nil)); res.Status != tc.status || len(res.Logs) != 0 {
			t.Errorf("%s: status %d logs %q, want %d and no log line per request", tc.config, res.Status, res.Logs, tc.status)
		}
	}
}

func TestBadConfig(t *testing.T) {
	h := sdktest.New(&filter{}, sdktest.Options{Config: []byte(`{"rate":0}`)})
	if res := h.Do(httptest.NewRequest("GET", "/", nil)); res.Status != 500 || len(res.Logs) != 1 || res.Upstream != nil {
		t.Fatalf("status %d logs %q", res.Status, res.Logs)
	}
}
