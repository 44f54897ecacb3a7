//go:build !wasip1

package headerpolicy

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sluicegw/sluice/sdk/sdktest"
)

const testConfig = `{
  "trusted_proxies": ["10.0.0.0/8"],
  "request": {
    "set": {"X-Client-IP": "${client_ip}", "X-Route": "${method} ${host}${path}"},
    "add": {"X-Tag": "a"},
    "remove": ["X-Internal"],
    "deny": ["X-Debug"],
    "require": [{"name": "X-Api-Key", "match": "^k[0-9]+$"}],
    "reject_status": 403,
    "max_headers": 6,
    "request_id": true
  },
  "response": {
    "set": {"X-Served-By": "sluice", "X-Request-Id": "${request_id}"},
    "add": {"Vary": "X-Api-Key"},
    "remove": ["Server"],
    "hsts": true
  }
}`

func upstream(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Server", "secret/1.0")
	w.Header().Set("Vary", "Accept")
	w.Header().Set("X-Served-By", "upstream")
	w.Write([]byte("upstream\n"))
}

func TestHeaderPolicy(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header map[string]string
		status int
	}{
		{"allowed", map[string]string{"X-Api-Key": "k1", "X-Internal": "x", "X-Client-IP": "spoofed"}, 200},
		{"missing required", map[string]string{}, 403},
		{"required does not match", map[string]string{"X-Api-Key": "nope"}, 403},
		{"denied", map[string]string{"X-Api-Key": "k1", "X-Debug": "1"}, 403},
		{"too many headers", map[string]string{"X-Api-Key": "k1", "A": "1", "B": "1", "C": "1", "D": "1", "E": "1", "F": "1"}, 431},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := sdktest.New(&filter{}, sdktest.Options{Config: []byte(testConfig), Upstream: http.HandlerFunc(upstream)})
			r := httptest.NewRequest("GET", "http://web.test/a?b=1", nil)
			r.RemoteAddr = "10.1.1.1:5000"
			r.Header.Set("X-Forwarded-For", "198.51.100.7")
			for k, v := range tc.header {
				r.Header.Set(k, v)
			}
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
			up := res.Upstream.Header
			id := up.Get("X-Request-Id")
			for name, want := range map[string]string{
				"X-Client-IP": "198.51.100.7",
				"X-Route":     "GET web.test/a?b=1",
				"X-Tag":       "a",
				"X-Internal":  "",
			} {
				if got := up.Get(name); got != want {
					t.Errorf("upstream %s = %q, want %q", name, got, want)
				}
			}
			if len(id) != 32 {
				t.Errorf("request id %q, want 32 hex digits", id)
			}
			for name, want := range map[string][]string{
				"Server":                    nil,
				"X-Served-By":               {"sluice"},
				"X-Request-Id":              {id},
				"Vary":                      {"Accept", "X-Api-Key"},
				"Strict-Transport-Security": {"max-age=31536000; includeSubDomains"},
			} {
				if got := res.Header.Values(name); len(got) != len(want) || len(want) > 0 && (got[0] != want[0] || got[len(got)-1] != want[len(want)-1]) {
					t.Errorf("response %s = %q, want %q", name, got, want)
				}
			}
		})
	}
}

func TestRequestIDKept(t *testing.T) {
	h := sdktest.New(&filter{}, sdktest.Options{Config: []byte(`{"request":{"request_id":"X-Trace"}}`)})
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-Trace", "abc")
	if res := h.Do(r); res.Status != 200 || res.Upstream.Header.Get("X-Trace") != "abc" {
		t.Fatalf("status %d, X-Trace %q", res.Status, res.Upstream.Header.Get("X-Trace"))
	}
}

func TestBadConfig(t *testing.T) {
	h := sdktest.New(&filter{}, sdktest.Options{Config: []byte(`{"request":{"set":{"X":"${nope}"}}}`)})
	if res := h.Do(httptest.NewRequest("GET", "/", nil)); res.Status != 500 || len(res.Logs) != 1 || res.Upstream != nil {
		t.Fatalf("status %d logs %q", res.Status, res.Logs)
	}
}

// TestRouteVariable: ${route} is what the host says the route is, in both
// directions, and empty when it says nothing.
func TestRouteVariable(t *testing.T) {
	const config = `{"request":{"set":{"X-Route":"${route}"}},"response":{"set":{"X-Route":"[${route}]"}}}`
	for _, route := range []string{"default/web shop.test Prefix /cart", ""} {
		h := sdktest.New(&filter{}, sdktest.Options{Config: []byte(config), Route: route})
		res := h.Do(httptest.NewRequest("GET", "/cart", nil))
		if res.Status != 200 || res.Upstream.Header.Get("X-Route") != route || res.Header.Get("X-Route") != "["+route+"]" {
			t.Fatalf("route %q: status %d, upstream X-Route %q, response X-Route %q", route, res.Status,
				res.Upstream.Header.Get("X-Route"), res.Header.Get("X-Route"))
		}
	}
}
