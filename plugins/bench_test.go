package plugins

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/sluicegw/sluice/wasm"
)

// BenchmarkFilters compares, in one run, a request through no filter,
// through the no-op WASM filter (wasm/testdata/noop.wasm) and through the
// no-op native plugin (one gRPC round trip to another process), serially
// and with parallel requests. BENCHMARKS.md has the numbers.
func BenchmarkFilters(b *testing.B) {
	ctx := context.Background()
	end := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })

	host, err := wasm.NewHost(ctx, wasm.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer host.Close(ctx)
	wf, err := host.NewFilter(ctx, wasm.FilterSpec{
		Name:   "noop",
		Module: wasm.Source{Path: filepath.Join("..", "wasm", "testdata", "noop.wasm")},
		Pool:   wasm.PoolConfig{Min: 4, Max: 64},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer wf.Close()

	m := NewManager(Options{})
	defer m.Close()
	if errs := m.Sync(ctx, []Spec{{Name: "noop", Command: testPlugin, Config: []byte(`{"mode":"noop"}`)}}); len(errs) > 0 {
		b.Fatal(errs)
	}
	pf, err := m.Filter("noop", nil, nil)
	if err != nil {
		b.Fatal(err)
	}

	for _, c := range []struct {
		name string
		h    http.Handler
	}{
		{"none", end},
		{"wasm-noop", wf.Middleware(end)},
		{"plugin-noop", pf.Middleware(end)},
	} {
		b.Run(c.name+"/serial", func(b *testing.B) {
			b.ReportAllocs()
			req := httptest.NewRequest("GET", "http://bench.test/a?b=1", nil)
			req.Header.Set("User-Agent", "bench")
			for b.Loop() {
				rec := httptest.NewRecorder()
				c.h.ServeHTTP(rec, req)
				if rec.Code != http.StatusNoContent {
					b.Fatalf("status %d", rec.Code)
				}
			}
		})
		b.Run(c.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req := httptest.NewRequest("GET", "http://bench.test/a?b=1", nil)
				req.Header.Set("User-Agent", "bench")
				for pb.Next() {
					rec := httptest.NewRecorder()
					c.h.ServeHTTP(rec, req)
					if rec.Code != http.StatusNoContent {
						b.Errorf("status %d", rec.Code)
						return
					}
				}
			})
		})
	}
}
