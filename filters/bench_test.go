package filters

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	"github.com/sluicegw/sluice/wasm"
)

// benchCache is wazero's compilation cache, shared with later runs.
var benchCache = filepath.Join(os.TempDir(), "sluice-test-wazero-cache")

type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nopWriter) WriteHeader(int)             {}

// chainConfigs is a realistic use of each built-in: the three filters of
// BenchmarkChain, in order.
var chainConfigs = []struct{ name, config string }{
	{"mtls-identity", `{"allow":[{"trust_domain":"shop.test"}],"forward":"xfcc"}`},
	{"header-policy", `{"request":{"set":{"X-Client-IP":"${client_ip}"},"remove":["X-Internal"],"request_id":true},"response":{"hsts":true}}`},
	{"ratelimit", `{"rate":1000000000,"burst":1000000000,"key":"tls_identity"}`},
}

func benchChain(b testing.TB, upstream http.Handler) http.Handler {
	return benchFilters(b, upstream, chainConfigs...)
}

func benchFilters(b testing.TB, upstream http.Handler, configs ...struct{ name, config string }) http.Handler {
	ctx := context.Background()
	h, err := wasm.NewHost(ctx, wasm.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), CacheDir: benchCache})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close(ctx) })
	next := upstream
	for i := len(configs) - 1; i >= 0; i-- {
		c := configs[i]
		mod, _ := Module(c.name)
		if err := Validate(c.name, []byte(c.config)); err != nil {
			b.Fatal(err)
		}
		f, err := h.NewFilter(ctx, wasm.FilterSpec{Name: c.name, Module: wasm.Source{Bytes: mod}, Config: []byte(c.config), Env: Env(c.name),
			Pool: wasm.PoolConfig{Min: runtime.GOMAXPROCS(0), Max: runtime.GOMAXPROCS(0)}})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(f.Close)
		next = f.Middleware(next)
	}
	return next
}

func benchRequest() *http.Request {
	r, _ := http.NewRequest(http.MethodGet, "https://shop.test/cart?id=7", nil)
	r.RemoteAddr = "192.0.2.1:40000"
	r.Header.Set("Accept", "text/html")
	r.Header.Set("User-Agent", "bench/1.0")
	u, _ := url.Parse("spiffe://shop.test/web")
	c := &x509.Certificate{Raw: []byte("bench"), Subject: pkix.Name{CommonName: "web"}, URIs: []*url.URL{u}}
	r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}, VerifiedChains: [][]*x509.Certificate{{c}}}
	return r
}

// BenchmarkChain: a request through mtls-identity, header-policy and
// ratelimit (the committed modules, in the real wasm host) to a no-op
// upstream handler, against the same request with no filter. The chain's
// cost per request is the difference; "parallel" runs on every core.
func BenchmarkChain(b *testing.B) {
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Forwarded-Client-Cert") == "" && r.Header.Get("X-Baseline") == "" {
			w.WriteHeader(500)
			return
		}
		w.WriteHeader(200)
	})
	for _, tc := range []struct {
		name    string
		handler func(*testing.B) http.Handler
	}{
		{"none", func(*testing.B) http.Handler { return upstream }},
		{"three-filters", func(b *testing.B) http.Handler { return benchChain(b, upstream) }},
		{"mtls-identity", func(b *testing.B) http.Handler { return benchFilters(b, upstream, chainConfigs[0]) }},
		{"header-policy", func(b *testing.B) http.Handler { return benchFilters(b, upstream, chainConfigs[1]) }},
		{"ratelimit", func(b *testing.B) http.Handler { return benchFilters(b, upstream, chainConfigs[2]) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h := tc.handler(b)
			r := benchRequest()
			if tc.name != "three-filters" && tc.name != "mtls-identity" {
				r.Header.Set("X-Baseline", "1")
			}
			b.ReportAllocs()
			cpu := processCPU()
			for b.Loop() {
				h.ServeHTTP(&nopWriter{h: http.Header{}}, r.Clone(r.Context()))
			}
			b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
		})
		b.Run(tc.name+"/parallel", func(b *testing.B) {
			h := tc.handler(b)
			b.ReportAllocs()
			b.ResetTimer() // not the instances' start
			b.RunParallel(func(pb *testing.PB) {
				r := benchRequest()
				if tc.name != "three-filters" && tc.name != "mtls-identity" {
					r.Header.Set("X-Baseline", "1")
				}
				for pb.Next() {
					h.ServeHTTP(&nopWriter{h: http.Header{}}, r.Clone(r.Context()))
				}
			})
		})
	}
}

// processCPU is the CPU time the process has used (user + system), in
// nanoseconds. On a shared machine, where ns/op also counts the time other
// jobs held the cores, cpu-ns/op is the steadier figure (it still includes
// the runtime's own threads, e.g. the garbage collector).
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// TestChainAnswers checks what BenchmarkChain measures: the three filters
// let the benchmark request through with the identity forwarded.
func TestChainAnswers(t *testing.T) {
	var got http.Header
	h := benchChain(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header.Clone() }))
	w := &nopWriter{h: http.Header{}}
	h.ServeHTTP(w, benchRequest())
	if got == nil || got.Get("X-Forwarded-Client-Cert") == "" || got.Get("X-Client-IP") != "192.0.2.1" || len(got.Get("X-Request-Id")) != 32 {
		t.Fatalf("upstream headers %v", got)
	}
	if w.h.Get("Strict-Transport-Security") == "" || w.h.Get("RateLimit-Policy") == "" {
		t.Fatalf("response headers %v", w.h)
	}
}
