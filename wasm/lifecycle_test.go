package wasm

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSwap1000 replaces a filter 1000 times while requests flow through an
// atomically swapped handler, closing each old filter. Afterwards no
// instance, compiled module, goroutine or memory growth is left.
func TestSwap1000(t *testing.T) {
	h := newHost(t, Config{})
	noop, err := os.ReadFile("testdata/noop.wasm")
	if err != nil {
		t.Fatal(err)
	}
	headers, err := os.ReadFile("testdata/headers.wasm")
	if err != nil {
		t.Fatal(err)
	}
	up := &upstream{}
	var cur atomic.Pointer[Filter]
	first, err := h.NewFilter(context.Background(), FilterSpec{Name: "swap", Module: Source{Bytes: noop}, Pool: PoolConfig{Min: 1, Max: 4}})
	if err != nil {
		t.Fatal(err)
	}
	cur.Store(first)
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cur.Load().Middleware(up).ServeHTTP(w, r)
	}))
	client := srv.Client()

	swap := func(i int) {
		bin := noop
		if i%2 == 1 {
			bin = headers // alternate digests: modules are really replaced
		}
		nf, err := h.NewFilter(context.Background(), FilterSpec{Name: "swap", Module: Source{Bytes: bin}, Pool: PoolConfig{Min: 1, Max: 4}})
		if err != nil {
			t.Fatal(err)
		}
		cur.Swap(nf).Close()
	}
	// Warm up allocator and runtime before measuring.
	for i := 0; i < 50; i++ {
		swap(i)
	}
	runtime.GC()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)
	g0 := runtime.NumGoroutine()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var served, failed atomic.Int64
	for c := 0; c < 4; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(srv.URL)
				if err != nil {
					failed.Add(1)
					continue
				}
				resp.Body.Close()
				if resp.StatusCode == 200 {
					served.Add(1)
				} else if resp.StatusCode != 503 { // 503: raced a Close (documented)
					failed.Add(1)
				}
			}
		}()
	}
	for i := 0; i < 1000; i++ {
		swap(i)
	}
	close(stop)
	wg.Wait()
	client.CloseIdleConnections()
	if failed.Load() != 0 || served.Load() == 0 {
		t.Errorf("served %d, failed %d", served.Load(), failed.Load())
	}
	last := cur.Load()
	waitFor(t, func() bool { return h.Modules() == 1 }, "old compiled modules are still held")
	if s := last.Stats().Pool; s.Size > 4 {
		t.Errorf("current pool %+v", s)
	}
	waitFor(t, func() bool { return runtime.NumGoroutine() <= g0+2 }, "goroutines leaked")
	runtime.GC()
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)
	// 1000 swaps each allocate (and free) a pool, instances and compiled
	// module references; a leak of even one instance per swap would hold
	// >100 MiB.
	if grow := int64(m1.HeapInuse) - int64(m0.HeapInuse); grow > 16<<20 {
		t.Errorf("heap in use grew by %d MiB over 1000 swaps", grow>>20)
	}
	t.Logf("served %d requests during 1000 swaps; heap %d -> %d KiB; goroutines %d -> %d",
		served.Load(), m0.HeapInuse>>10, m1.HeapInuse>>10, g0, runtime.NumGoroutine())
}

// TestHammerMiddleware: many concurrent requests through a small pool
// (-race); every request is answered, the pool never exceeds Max and no
// instance serves two requests at once (the guest would trap if it did).
func TestHammerMiddleware(t *testing.T) {
	h := newHost(t, Config{})
	f := newFilter(t, h, FilterSpec{Name: "hammer", Module: guest("headers"), Pool: PoolConfig{Min: 1, Max: 3, Wait: 10 * time.Second}})
	up := &upstream{}
	handler := f.Middleware(up)
	var wg sync.WaitGroup
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				rec := newRecorder()
				req, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
				req.Header.Set("Accept", "*/*")
				handler.ServeHTTP(rec, req)
				if rec.code != 200 {
					t.Errorf("status %d", rec.code)
					return
				}
				if s := f.Stats().Pool; s.Size > 3 {
					t.Errorf("pool size %d > 3", s.Size)
				}
			}
		}()
	}
	wg.Wait()
	s := f.Stats()
	if s.Requests != 3200 || s.Traps+s.Busy+s.Deadlines != 0 || s.Pool.InUse != 0 {
		t.Errorf("stats %+v", s)
	}
	if s.Pool.Instantiations > 3 {
		t.Errorf("%d instantiations for max 3", s.Pool.Instantiations)
	}
}

type recorder2 struct {
	h    http.Header
	code int
}

func newRecorder() *recorder2            { return &recorder2{h: http.Header{}} }
func (r *recorder2) Header() http.Header { return r.h }
func (r *recorder2) WriteHeader(c int)   { r.code = c }
func (r *recorder2) Write(p []byte) (int, error) {
	if r.code == 0 {
		r.code = 200
	}
	return len(p), nil
}

// TestRecycleAfter closes instances after N requests.
func TestRecycleAfter(t *testing.T) {
	h := newHost(t, Config{})
	f := newFilter(t, h, FilterSpec{Name: "recycle", Module: guest("noop"), RecycleAfter: 10, Pool: PoolConfig{Min: 1, Max: 1}})
	handler := f.Middleware(&upstream{})
	for i := 0; i < 35; i++ {
		rec := newRecorder()
		handler.ServeHTTP(rec, newReq(t))
		if rec.code != 200 {
			t.Fatalf("request %d: %d", i, rec.code)
		}
	}
	if s := f.Stats(); s.Recycled != 3 {
		t.Errorf("recycled %d, want 3 (%+v)", s.Recycled, s)
	}
}

func newReq(t *testing.T) *http.Request {
	req, err := http.NewRequest(http.MethodGet, "http://x/", nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// TestGoGuest builds a standard Go reactor guest (GOOS=wasip1, -buildmode=
// c-shared, //go:wasmexport) and runs it: _initialize must run, WASI env
// and clocks work, and it fits the 64-page cap with the host's GOGC=25.
func TestGoGuest(t *testing.T) {
	bin := buildGoGuest(t)
	h, logs := bufferedHost(t, Config{})
	f := newFilter(t, h, FilterSpec{Name: "gofilter", Module: Source{Path: bin}, Pool: PoolConfig{Min: 1, Max: 2}})
	srv := serve(t, f.Middleware(&upstream{}))
	for i := 0; i < 200; i++ {
		resp, body := do(t, srv.Client(), http.MethodGet, srv.URL+"/", map[string]string{"X-Name": "gopher"}, nil)
		if resp.StatusCode != 200 || body != "upstream" || resp.Header.Get("X-Go-Guest") != "hello gopher GOGC=25" {
			t.Fatalf("request %d: %d %q %v", i, resp.StatusCode, body, resp.Header)
		}
	}
	if s := f.Stats(); s.Traps+s.Deadlines+s.MemoryCaps != 0 {
		t.Errorf("failures: %+v", s)
	}
	if !strings.Contains(logs.String(), `msg="go guest initialized" filter=gofilter stream=stdout`) {
		t.Errorf("guest stdout not logged with the filter name:\n%s", logs.String())
	}
}

// buildGoGuest compiles testdata/goguest with the Go toolchain running the
// test, into a temporary directory.
func buildGoGuest(t testing.TB) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "goguest.wasm")
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		if gobin, err = exec.LookPath("go"); err != nil {
			t.Fatal("the go command is needed to build the Go test guest")
		}
	}
	cmd := exec.Command(gobin, "build", "-buildmode=c-shared", "-o", out, ".")
	cmd.Dir = filepath.Join("testdata", "goguest")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOFLAGS=-mod=mod", "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the Go guest: %v\n%s", err, b)
	}
	return out
}
