package filtertest_test

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/sluicegw/sluice/wasm"
	"github.com/sluicegw/sluice/wasm/filtertest"
)

func guest(name string) string { return "../testdata/" + name + ".wasm" }

func TestUpstreamSeesChanges(t *testing.T) {
	h := filtertest.Load(t, guest("headers"), filtertest.Options{})
	res := h.Do(httptest.NewRequest("POST", "/p?q=1", strings.NewReader("payload")))
	if !res.Next || res.Status != 200 || string(res.Body) != "upstream\n" {
		t.Fatalf("result %d %q next=%v", res.Status, res.Body, res.Next)
	}
	if res.Upstream.Header.Get("X-Filtered") != "1" || res.Upstream.URL.RequestURI() != "/p?q=1" || string(res.UpstreamBody) != "payload" {
		t.Errorf("upstream saw %s %v %q", res.Upstream.URL, res.Upstream.Header, res.UpstreamBody)
	}
}

func TestOwnAnswer(t *testing.T) {
	var called bool
	up := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called = true })
	h := filtertest.Load(t, guest("deny"), filtertest.Options{Upstream: up})
	res := h.Do(httptest.NewRequest("GET", "/", nil))
	if res.Next || called || res.Status != 403 || res.Upstream != nil {
		t.Fatalf("result %+v, upstream called %v", res, called)
	}
}

func TestResponsePhase(t *testing.T) {
	h := filtertest.Load(t, guest("body"), filtertest.Options{})
	res := h.Do(httptest.NewRequest("GET", "/", nil))
	if string(res.Body) != "<<upstream\n>>" {
		t.Fatalf("body %q", res.Body)
	}
}

// A synthetic r.TLS reaches sluice.tls_peer_*: no handshake needed.
func TestSyntheticPeerAndMetrics(t *testing.T) {
	id, _ := url.Parse("spiffe://shop.test/web")
	cert := &x509.Certificate{Raw: []byte("der"), URIs: []*url.URL{id}}
	h := filtertest.Load(t, guest("sluice"), filtertest.Options{Name: "sl"})
	r := httptest.NewRequest("GET", "/", nil)
	r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}, VerifiedChains: [][]*x509.Certificate{{cert}}}
	res := h.Do(r)
	if res.Status != 200 || !strings.HasPrefix(string(res.Body), "2|1|") || !strings.HasSuffix(string(res.Body), "spiffe://shop.test/web") {
		t.Fatalf("result %d %q", res.Status, res.Body)
	}
	if got := h.Metric("requests_total"); got != 1 {
		t.Errorf("metric %d, want 1", got)
	}
}

func TestFailurePolicyAndLogs(t *testing.T) {
	for _, tc := range []struct {
		fail   wasm.FailPolicy
		status int
	}{{wasm.FailClosed, 500}, {wasm.FailOpen, 200}} {
		h := filtertest.Load(t, guest("trap"), filtertest.Options{Name: "trapper", Fail: tc.fail})
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("X-Trap", "1")
		if res := h.Do(r); res.Status != tc.status {
			t.Errorf("policy %v: status %d, want %d", tc.fail, res.Status, tc.status)
		}
		if s := h.Filter().Stats(); s.Traps != 1 {
			t.Errorf("stats %+v", s)
		}
		if logs := strings.Join(h.Logs(), "\n"); !strings.Contains(logs, "filter=trapper") {
			t.Errorf("logs do not name the filter:\n%s", logs)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	for _, p := range []string{guest("noexports"), "does-not-exist.wasm"} {
		if h, err := filtertest.New(p, filtertest.Options{}); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("New(%s) = %v, %v; want an error naming the module", p, h, err)
		}
	}
}

func TestConcurrentDo(t *testing.T) {
	h := filtertest.Load(t, guest("headers"), filtertest.Options{Pool: wasm.PoolConfig{Min: 1, Max: 4}})
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				if res := h.Do(httptest.NewRequest("GET", "/", nil)); res.Upstream == nil || res.Upstream.Header.Get("X-Filtered") != "1" {
					errs <- "missing X-Filtered"
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestSDKGuestBounded: a standard-Go SDK guest (3 header reads, 1 set)
// answers 20,000 requests on one instance with its linear memory under a
// bound, and without the SDK's goroutine warning (the Go runtime's own
// GC goroutines must not count as the filter's).
func TestSDKGuestBounded(t *testing.T) {
	path := goGuest(t, "goheaders")
	h := filtertest.Load(t, path, filtertest.Options{Name: "bench", Pool: wasm.PoolConfig{Min: 1, Max: 1},
		Host: wasm.Config{CacheDir: testCache}})
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Accept", "text/html")
	for i := range 20_000 {
		if res := h.Do(r); res.Status != 200 || res.Upstream.Header.Get("X-Filtered") != "1" {
			t.Fatalf("request %d: %d %v", i, res.Status, res.Upstream)
		}
	}
	if pages := h.Metric("memory_pages"); pages == 0 || pages > 80 {
		t.Errorf("linear memory %d pages after 20k requests, want (0, 80] (BENCHMARKS.md: 68)", pages)
	}
	if logs := strings.Join(h.Logs(), "\n"); strings.Contains(logs, "goroutines") {
		t.Errorf("goroutine warning:\n%s", logs)
	}
}

// TestSDKGuards: the SDK's wasm-only guards. A filter that starts
// goroutines gets one warning, however many it starts; a module that
// registers no handler answers 500 and says why.
func TestSDKGuards(t *testing.T) {
	path := goGuest(t, "gomisuse")
	h := filtertest.Load(t, path, filtertest.Options{Name: "misuse", Pool: wasm.PoolConfig{Min: 1, Max: 1},
		Host: wasm.Config{CacheDir: testCache}})
	spawn := httptest.NewRequest("GET", "/", nil)
	spawn.Header.Set("X-Spawn", "1")
	for _, r := range []*http.Request{httptest.NewRequest("GET", "/", nil), spawn, spawn, spawn} {
		if res := h.Do(r); res.Status != 200 {
			t.Fatalf("status %d", res.Status)
		}
	}
	if n := strings.Count(strings.Join(h.Logs(), "\n"), "started goroutines"); n != 1 {
		t.Errorf("%d goroutine warnings, want 1:\n%s", n, strings.Join(h.Logs(), "\n"))
	}

	none := filtertest.Load(t, path, filtertest.Options{Name: "nohandler",
		Host: wasm.Config{CacheDir: testCache, GuestEnv: map[string]string{"GOGC": "25", "GOMISUSE_NOHANDLER": "1"}}})
	if res := none.Do(httptest.NewRequest("GET", "/", nil)); res.Status != 500 || res.Next {
		t.Errorf("no handler: status %d, upstream called %v", res.Status, res.Next)
	}
	if logs := strings.Join(none.Logs(), "\n"); !strings.Contains(logs, "no handler") {
		t.Errorf("no log line says why:\n%s", logs)
	}
}
