package filters

import (
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"

	"github.com/sluicegw/sluice/wasm"
	"github.com/sluicegw/sluice/wasm/filtertest"
)

// TestRateLimitWasm runs the committed ratelimit module in the real wasm
// host: many concurrent requests over several instances take from one
// bucket, so exactly burst of them pass.
func TestRateLimitWasm(t *testing.T) {
	h := filtertest.Load(t, filepath.Join("wasm", "ratelimit.wasm"), filtertest.Options{
		Name:   "ratelimit",
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
