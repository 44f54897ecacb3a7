package filtertest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluicegw/sluice/wasm"
	"github.com/sluicegw/sluice/wasm/filtertest"
)

// The SDK's per-request cost, measured in one run against a no-filter
// baseline: BENCHMARKS.md has the numbers and the command.

var goGuests struct {
	once  sync.Once
	paths map[string]string
	err   error
}

// goGuest builds testdata/NAME (a standard-Go filter using the SDK) once
// per test binary.
func goGuest(b testing.TB, name string) string {
	goGuests.once.Do(func() {
		dir, err := os.MkdirTemp("", "sluice-sdk-bench-")
		if err != nil {
			goGuests.err = err
			return
		}
		names := []string{"gonoop", "goheaders", "gomisuse"}
		errs := make([]error, len(names))
		goGuests.paths = map[string]string{}
		var wg sync.WaitGroup
		for i, n := range names {
			p := filepath.Join(dir, n+".wasm")
			goGuests.paths[n] = p
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = filtertest.BuildGo(filepath.Join("testdata", n), p)
			}()
		}
		wg.Wait()
		goGuests.err = errors.Join(errs...)
	})
	if goGuests.err != nil {
		b.Fatal(goGuests.err)
	}
	return goGuests.paths[name]
}

// benchWriter is a reusable ResponseWriter: the baseline costs nothing but
// the handler call.
type benchWriter struct {
	h    http.Header
	code int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *benchWriter) WriteHeader(code int)        { w.code = code }

var ok = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) })

func benchRequest() *http.Request {
	r, _ := http.NewRequest(http.MethodGet, "http://shop.test/cart?id=7", nil)
	r.Header.Set("Accept", "text/html")
	r.Header.Set("User-Agent", "bench/1.0")
	r.Header.Set("X-Request-Id", "5b1f0c7e-2f7a-4c1e-9f4e-3f8f2a9b6c01")
	return r
}

type benchFilter struct {
	host    *wasm.Host
	filter  *wasm.Filter
	metrics *wasm.MemoryMetrics
}

// testCache is wazero's compilation cache for the standard-Go guests,
// shared with later runs: a cold compile under -race takes most of a
// minute on a busy machine, a cached load milliseconds.
var testCache = filepath.Join(os.TempDir(), "sluice-test-wazero-cache")

func newBenchFilter(b testing.TB, path string, env map[string]string) *benchFilter {
	ctx := context.Background()
	m := &wasm.MemoryMetrics{}
	h, err := wasm.NewHost(ctx, wasm.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: m, GuestEnv: env, CacheDir: testCache})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close(ctx) })
	f, err := h.NewFilter(ctx, wasm.FilterSpec{Name: "bench", Module: wasm.Source{Path: path}, Pool: wasm.PoolConfig{Min: 1, Max: 1}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(f.Close)
	return &benchFilter{host: h, filter: f, metrics: m}
}

// pages is the guest's linear memory, as the guest reports it.
func (bf *benchFilter) pages() int64 { return bf.metrics.Get("bench", "memory_pages") }

// BenchmarkSDKRequest: one request through the filter's middleware to a
// no-op upstream handler, on one pooled instance. "none" is the
// baseline; a filter's cost is its time minus the baseline's.
func BenchmarkSDKRequest(b *testing.B) {
	for _, tc := range []struct{ name, path string }{
		{"none", ""},
		{"go-noop", "gonoop"},
		{"go-headers", "goheaders"},
		{"wat-noop", "../testdata/noop.wasm"},
		{"wat-headers", "../testdata/headers.wasm"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var handler http.Handler = ok
			switch {
			case tc.path == "":
			case filepath.Ext(tc.path) == ".wasm":
				handler = newBenchFilter(b, tc.path, nil).filter.Middleware(ok)
			default:
				handler = newBenchFilter(b, goGuest(b, tc.path), nil).filter.Middleware(ok)
			}
			w, r := &benchWriter{h: http.Header{}}, benchRequest()
			b.ReportAllocs()
			for b.Loop() {
				handler.ServeHTTP(w, r)
			}
			if w.code != 200 {
				b.Fatalf("status %d", w.code)
			}
		})
	}
}

// BenchmarkSDKGuestMemory sends 300,000 requests through one instance
// of a filter and reports the standard-Go guest's linear memory after
// 1,000, 10,000, 100,000 and 300,000 requests, and the latency tail (a Go
// guest's own GC runs on the request path; wat-headers, with no guest GC,
// shows what the host's own allocations cost the tail). Environments: the
// host's default (GOGC=25; the SDK adds its 4 MiB soft memory limit); an
// environment with neither variable (the SDK's defaults: GOGC 25, 4 MiB);
// GOGC=25 without a limit and with 3 MiB; and GOGC=100 with and without
// the SDK's limit. One op is 300,000 requests.
func BenchmarkSDKGuestMemory(b *testing.B) {
	const n = 300_000
	checkpoints := []int{1_000, 10_000, 100_000, 300_000}
	for _, guest := range []string{"gonoop", "goheaders", "wat-headers"} {
		for _, env := range []struct {
			name string
			env  map[string]string
		}{
			{"default", nil},
			{"unset", map[string]string{"SLUICE_BENCH": "1"}}, // neither GOGC nor GOMEMLIMIT: the SDK's defaults
			{"gogc25-nolimit", map[string]string{"GOGC": "25", "GOMEMLIMIT": "off"}},
			{"gogc25-limit3MiB", map[string]string{"GOGC": "25", "GOMEMLIMIT": "3MiB"}},
			{"gogc100", map[string]string{"GOGC": "100"}},
			{"gogc100-nolimit", map[string]string{"GOGC": "100", "GOMEMLIMIT": "off"}},
		} {
			if guest != "goheaders" && env.name != "default" {
				continue // flat (gonoop) or no Go runtime (wat-headers)
			}
			b.Run(guest+"/"+env.name, func(b *testing.B) {
				path := "../testdata/headers.wasm"
				if guest != "wat-headers" {
					path = goGuest(b, guest)
				}
				bf := newBenchFilter(b, path, env.env)
				handler := bf.filter.Middleware(ok)
				w, r := &benchWriter{h: http.Header{}}, benchRequest()
				lat := make([]time.Duration, 0, n) // of the first n requests
				pages := map[int]int64{}
				total := 0
				for b.Loop() {
					for range n {
						clear(w.h)
						t0 := time.Now()
						handler.ServeHTTP(w, r)
						if d := time.Since(t0); len(lat) < n {
							lat = append(lat, d)
						}
						if total++; slices.Contains(checkpoints, total) {
							pages[total] = bf.pages()
						}
					}
				}
				if s := bf.filter.Stats(); s.Traps+s.Deadlines+s.MemoryCaps != 0 || w.code != 200 {
					b.Fatalf("status %d, stats %+v", w.code, s)
				}
				slices.Sort(lat)
				if guest != "wat-headers" {
					for _, c := range checkpoints {
						b.ReportMetric(float64(pages[c]), fmt.Sprintf("pages@%dk", c/1000))
					}
				}
				b.ReportMetric(float64(lat[n/2].Nanoseconds()), "p50-ns")
				b.ReportMetric(float64(lat[n*99/100].Nanoseconds()), "p99-ns")
				b.ReportMetric(float64(lat[n*999/1000].Nanoseconds()), "p99.9-ns")
				b.ReportMetric(float64(lat[n-1].Nanoseconds()), "max-ns")
			})
		}
	}
}

func ExampleBuildGo() {
	// In a filter's test: build the filter in the parent folder once
	// (TestMain), then load it with Load or New.
	if err := filtertest.BuildGo("..", filepath.Join(os.TempDir(), "myfilter.wasm")); err != nil {
		fmt.Println(err)
	}
}
