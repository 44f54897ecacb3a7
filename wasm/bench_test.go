package wasm

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// benchWriter is a reusable ResponseWriter so the benchmark measures the
// filter, not a recorder.
type benchWriter struct {
	h    http.Header
	code int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) WriteHeader(c int)           { w.code = c }
func (w *benchWriter) Write(p []byte) (int, error) { return len(p), nil }

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.WriteHeader(http.StatusOK)
})

// BenchmarkMiddleware: time and allocations per request through the
// middleware (in-process, no network) against the no-filter baseline.
// inst/op must be 0: a warm pool never instantiates on the request path.
func BenchmarkMiddleware(b *testing.B) {
	h := newHost(b, Config{})
	run := func(b *testing.B, handler http.Handler, f *Filter) {
		w := &benchWriter{h: http.Header{}}
		req, _ := http.NewRequest(http.MethodGet, "http://example.com/path?q=1", nil)
		req.Header.Set("Accept", "*/*")
		req.Header.Set("User-Agent", "bench")
		req.Header.Set("X-Request-Id", "0123456789abcdef")
		var before uint64
		if f != nil {
			handler.ServeHTTP(w, req) // warm
			before = f.Stats().Pool.Instantiations
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			clear(w.h)
			handler.ServeHTTP(w, req)
		}
		b.StopTimer()
		if w.code != 200 {
			b.Fatalf("status %d", w.code)
		}
		if f != nil {
			b.ReportMetric(float64(f.Stats().Pool.Instantiations-before)/float64(b.N), "inst/op")
		}
	}
	b.Run("baseline", func(b *testing.B) { run(b, okHandler, nil) })
	for _, g := range []string{"noop", "headers"} {
		b.Run(g+"-wat", func(b *testing.B) {
			f := newFilter(b, h, FilterSpec{Name: g, Module: guest(g), Pool: PoolConfig{Min: 1, Max: 1}})
			run(b, f.Middleware(okHandler), f)
		})
	}
}

// BenchmarkMiddlewareParallel: the same under concurrency (GOMAXPROCS
// goroutines sharing one filter with a pool of 8).
func BenchmarkMiddlewareParallel(b *testing.B) {
	h := newHost(b, Config{})
	f := newFilter(b, h, FilterSpec{Name: "noop", Module: guest("noop"), Pool: PoolConfig{Min: 8, Max: 8}})
	handler := f.Middleware(okHandler)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := &benchWriter{h: http.Header{}}
		req, _ := http.NewRequest(http.MethodGet, "http://example.com/", nil)
		for pb.Next() {
			handler.ServeHTTP(w, req)
		}
	})
}

// BenchmarkDeadline compares ways to keep a guest call interruptible, on
// the WAT no-op (one handle_request call) and on a 1M-iteration loop:
//
//   - guard: Sluice's design. Close-on-context-done runtime; the instance
//     is its own never-allocated context; one watchdog goroutine closes its
//     Done channel when a call overruns (arming = one clock read + atomic).
//   - withtimeout: wazero's plain usage, context.WithTimeout per call.
//   - background: close-on-context-done with context.Background (cannot be
//     interrupted; wazero still starts its watcher).
//   - off: close-on-context-done disabled (cannot be interrupted at all).
func BenchmarkDeadline(b *testing.B) {
	ctx := context.Background()
	for _, g := range []string{"noop", "spin"} {
		bin, err := os.ReadFile("testdata/" + g + ".wasm")
		if err != nil {
			b.Fatal(err)
		}
		for _, mode := range []struct {
			name string
			i    Interrupt
		}{{"fuel", InterruptFuel}, {"guard-ctx", InterruptContext}} {
			b.Run(g+"/"+mode.name, func(b *testing.B) {
				benchGuestCall(b, bin, g, mode.i)
			})
		}
		for _, mode := range []string{"withtimeout", "background", "off"} {
			b.Run(g+"/"+mode, func(b *testing.B) {
				rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().WithCloseOnContextDone(mode != "off"))
				defer rt.Close(ctx)
				wasi_snapshot_preview1.MustInstantiate(ctx, rt)
				mod, err := rt.InstantiateWithConfig(ctx, bin, wazero.NewModuleConfig().WithName(""))
				if err != nil {
					b.Fatal(err)
				}
				fn := mod.ExportedFunction("handle_request")
				stack := make([]uint64, 1)
				b.ReportAllocs()
				for b.Loop() {
					var err error
					if mode == "withtimeout" {
						c, cancel := context.WithTimeout(ctx, time.Second)
						err = fn.CallWithStack(c, stack)
						cancel()
					} else {
						err = fn.CallWithStack(ctx, stack)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkColdStart: NewFilter with one instance (fetch, compile,
// validate, instantiate) on a fresh host, without and with a warm on-disk
// compilation cache, for the 100 KB TCK guest and a 1.8 MB standard-Go
// guest.
func BenchmarkColdStart(b *testing.B) {
	ctx := context.Background()
	guests := map[string]string{"tck": tckPath(b), "go": buildGoGuest(b)}
	for _, name := range []string{"tck", "go"} {
		bin, err := os.ReadFile(guests[name])
		if err != nil {
			b.Fatal(err)
		}
		cacheDir := b.TempDir()
		for _, cached := range []bool{false, true} {
			label := name + "/nocache"
			if cached {
				label = name + "/cache"
				// populate the cache once
				h := newHost(b, Config{CacheDir: cacheDir})
				f := newFilter(b, h, FilterSpec{Name: name, Module: Source{Bytes: bin}, Pool: PoolConfig{Min: 1, Max: 1}})
				f.Close()
			}
			b.Run(label, func(b *testing.B) {
				for b.Loop() {
					cfg := Config{Logger: testLogger(b)}
					if cached {
						cfg.CacheDir = cacheDir
					}
					h, err := NewHost(ctx, cfg)
					if err != nil {
						b.Fatal(err)
					}
					f, err := h.NewFilter(ctx, FilterSpec{Name: name, Module: Source{Bytes: bin}, Pool: PoolConfig{Min: 1, Max: 1}})
					if err != nil {
						b.Fatal(err)
					}
					f.Close()
					_ = h.Close(ctx)
				}
			})
		}
	}
}

// BenchmarkInstanceMemory reports the cost of one warm instance: guest
// linear memory and host heap, for the WAT no-op, the TCK guest and a
// standard-Go guest.
func BenchmarkInstanceMemory(b *testing.B) {
	const n = 16
	for _, g := range []struct {
		name string
		src  func() Source
	}{
		{"noop-wat", func() Source { return guest("noop") }},
		{"tck", func() Source { return Source{Path: tckPath(b)} }},
		{"go", func() Source { return Source{Path: buildGoGuest(b)} }},
	} {
		b.Run(g.name, func(b *testing.B) {
			src := g.src()
			h := newHost(b, Config{})
			// Compile first so that only instances are measured.
			f0 := newFilter(b, h, FilterSpec{Name: "warm", Module: src, Pool: PoolConfig{Min: 1, Max: 1}})
			var heap, pages float64
			for b.Loop() {
				runtime.GC()
				var m0, m1 runtime.MemStats
				runtime.ReadMemStats(&m0)
				f := newFilter(b, h, FilterSpec{Name: g.name, Module: src, Pool: PoolConfig{Min: n, Max: n}})
				runtime.GC()
				runtime.ReadMemStats(&m1)
				heap = float64(int64(m1.HeapInuse)-int64(m0.HeapInuse)) / n
				in, _ := f.pool.Get(context.Background())
				pages = float64(in.mem.Size()) / 65536
				f.pool.Put(in)
				f.Close()
			}
			_ = f0
			b.ReportMetric(heap, "heapB/instance")
			b.ReportMetric(pages, "pages/instance")
		})
	}
}

// benchGuestCall times handle_request through Sluice's call path (arming
// and disarming the deadline) on a pooled instance.
func benchGuestCall(b *testing.B, bin []byte, name string, mode Interrupt) {
	h := newHost(b, Config{Interrupt: mode})
	f := newFilter(b, h, FilterSpec{Name: name, Module: Source{Bytes: bin}, Pool: PoolConfig{Min: 1, Max: 1}})
	in, err := f.pool.Get(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer f.pool.Put(in)
	b.ReportAllocs()
	for b.Loop() {
		if err := in.call("handle_request", in.hreq, in.stack[:]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGoGuestTail sends b.N requests through a standard-Go guest
// (1 header read + 1 header set) and reports latency
// percentiles: standard-Go guests pause for their own GC on the request
// path, so p99.9 and max matter more than the median.
func BenchmarkGoGuestTail(b *testing.B) {
	bin := buildGoGuest(b)
	for _, tc := range []struct {
		recycle int
		env     map[string]string
	}{
		{0, map[string]string{"GOGC": "25"}},
		{0, map[string]string{"GOGC": "25", "GOMEMLIMIT": "3MiB"}},
		{0, map[string]string{"GOGC": "100"}},
		{5000, nil},
	} {
		recycle := tc.recycle
		b.Run(fmt.Sprintf("recycle=%d/env=%v", recycle, tc.env), func(b *testing.B) {
			h := newHost(b, Config{GuestEnv: tc.env, MemoryLimitPages: 256})
			f := newFilter(b, h, FilterSpec{Name: "go", Module: Source{Path: bin}, RecycleAfter: recycle, Pool: PoolConfig{Min: 2, Max: 2}})
			handler := f.Middleware(okHandler)
			w := &benchWriter{h: http.Header{}}
			req, _ := http.NewRequest(http.MethodGet, "http://example.com/", nil)
			req.Header.Set("X-Name", "gopher")
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				clear(w.h)
				t0 := time.Now()
				handler.ServeHTTP(w, req)
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			if w.code != 200 {
				b.Fatalf("status %d", w.code)
			}
			slices.Sort(lat)
			pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) }
			b.ReportMetric(pct(0.5), "p50-ns")
			b.ReportMetric(pct(0.99), "p99-ns")
			b.ReportMetric(pct(0.999), "p99.9-ns")
			b.ReportMetric(float64(lat[len(lat)-1].Nanoseconds()), "max-ns")
			in, _ := f.pool.Get(context.Background())
			b.ReportMetric(float64(in.mem.Size()/65536), "pages")
			f.pool.Put(in)
		})
	}
}

// BenchmarkKillLatency: how long after its 20 ms deadline a looping guest
// is stopped and answered (watchdog tick 5 ms + scheduling + reaching the
// next fuel check or loop-header check).
func BenchmarkKillLatency(b *testing.B) {
	for _, mode := range []struct {
		name string
		i    Interrupt
	}{{"fuel", InterruptFuel}, {"context", InterruptContext}} {
		b.Run(mode.name, func(b *testing.B) {
			const timeout = 20 * time.Millisecond
			h := newHost(b, Config{Interrupt: mode.i, Timeout: timeout})
			f := newFilter(b, h, FilterSpec{Name: "loop", Module: guest("loop"), Pool: PoolConfig{Min: 1, Max: 1}})
			handler := f.Middleware(okHandler)
			req, _ := http.NewRequest(http.MethodGet, "http://example.com/", nil)
			req.Header.Set("X-Loop", "1")
			var late []time.Duration
			for b.Loop() {
				w := &benchWriter{h: http.Header{}}
				t0 := time.Now()
				handler.ServeHTTP(w, req)
				late = append(late, time.Since(t0)-timeout)
				if w.code != 500 {
					b.Fatalf("status %d", w.code)
				}
			}
			slices.Sort(late)
			b.ReportMetric(float64(late[len(late)/2].Microseconds()), "p50-late-µs")
			b.ReportMetric(float64(late[len(late)-1].Microseconds()), "max-late-µs")
		})
	}
}
