package filters

import (
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sluicegw/sluice/wasm"
	"github.com/sluicegw/sluice/wasm/filtertest"
)

// TestRateLimitWasm runs the committed ratelimit module in the real wasm
// host: many concurrent requests over several instances take from one
// bucket, so exactly burst of them pass.
func TestRateLimitWasm(t *testing.T) {
	h := filtertest.Load(t, filepath.Join("wasm", "builtins.wasm"), filtertest.Options{
		Name:   "ratelimit",
		Host:   wasm.Config{CacheDir: benchCache, GuestEnv: map[string]string{"GOGC": "25", EnvVar: "ratelimit"}},
		Config: []byte(`{"rate":1,"period":"1h","burst":10,"key":"route"}`),
		Pool:   wasm.PoolConfig{Min: 2, Max: 4},
	})
	var (
		mu       sync.Mutex
		statuses = map[int]int{}
		wg       sync.WaitGroup
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				res := h.Do(httptest.NewRequest("GET", "/", nil))
				if res.Status == 429 && (res.Header.Get("Retry-After") != "3600" || res.Upstream != nil) {
					t.Errorf("429 with Retry-After %q, upstream reached: %v", res.Header.Get("Retry-After"), res.Upstream != nil)
				}
				mu.Lock()
				statuses[res.Status]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if statuses[200] != 10 || statuses[429] != 30 {
		t.Fatalf("statuses %v, want 10 × 200 and 30 × 429", statuses)
	}
	if got := h.Metric("limited_total"); got != 30 {
		t.Errorf("limited_total = %d, want 30", got)
	}
}

// TestBuiltinsWithoutName: an instance of the built-ins' module whose
// environment names no built-in answers 500 and logs why, instead of
// running some filter.
func TestBuiltinsWithoutName(t *testing.T) {
	for _, env := range []map[string]string{{"GOGC": "25"}, {"GOGC": "25", EnvVar: "nope"}} {
		h := filtertest.Load(t, filepath.Join("wasm", "builtins.wasm"), filtertest.Options{
			Name: "x",
			Host: wasm.Config{CacheDir: benchCache, GuestEnv: env},
		})
		res := h.Do(httptest.NewRequest("GET", "/", nil))
		if res.Status != 500 || res.Upstream != nil || !strings.Contains(strings.Join(h.Logs(), "\n"), "names no built-in filter") {
			t.Errorf("env %v: status %d, upstream reached %v, logs %q", env, res.Status, res.Upstream != nil, h.Logs())
		}
	}
}

// TestHeaderPolicyRouteWasm: ${route} in the real wasm host is the route
// the gateway put in the request's context (wasm.WithRoute), both ways.
func TestHeaderPolicyRouteWasm(t *testing.T) {
	h := filtertest.Load(t, filepath.Join("wasm", "builtins.wasm"), filtertest.Options{
		Name:   "header-policy",
		Config: []byte(`{"request":{"set":{"X-Route":"${route}"}},"response":{"set":{"X-Route":"${route}!"}}}`),
		Host:   wasm.Config{CacheDir: benchCache, GuestEnv: map[string]string{"GOGC": "25", EnvVar: "header-policy"}},
	})
	for _, route := range []string{"default/web shop.test Prefix /cart", ""} {
		r := httptest.NewRequest("GET", "/cart", nil)
		if route != "" {
			r = r.WithContext(wasm.WithRoute(r.Context(), route))
		}
		res := h.Do(r)
		if res.Status != 200 || res.Upstream == nil || res.Upstream.Header.Get("X-Route") != route || res.Header.Get("X-Route") != route+"!" {
			t.Errorf("route %q: status %d, upstream %v, response X-Route %q", route, res.Status, res.Upstream, res.Header.Get("X-Route"))
		}
	}
}
