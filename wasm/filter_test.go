package wasm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// logBuffer is a concurrency-safe log sink for asserting on log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func bufferedHost(t *testing.T, cfg Config) (*Host, *logBuffer) {
	lb := &logBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return newHost(t, cfg), lb
}

// upstream answers 200 "upstream" and records the last request.
type upstream struct {
	mu   sync.Mutex
	last *http.Request
	hits atomic.Int64
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.hits.Add(1)
	u.mu.Lock()
	u.last = r.Clone(context.Background())
	u.mu.Unlock()
	switch r.URL.Path {
	case "/404":
		w.Header().Set("X-Secret", "s3cret")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte("missing"))
		return
	case "/hello":
		w.Header().Set("Content-Length", "5")
		_, _ = w.Write([]byte("hello"))
		return
	}
	_, _ = w.Write([]byte("upstream"))
}

func (u *upstream) lastRequest() *http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last
}

func TestGuests(t *testing.T) {
	h, _ := bufferedHost(t, Config{})
	tests := []struct {
		guest      string
		config     string
		path       string
		wantStatus int
		wantBody   string
		wantHeader map[string]string
		noHeader   []string
		upstream   bool // the upstream must be reached
		check      func(t *testing.T, up *http.Request)
	}{
		{guest: "noop", path: "/", wantStatus: 200, wantBody: "upstream", upstream: true},
		{guest: "headers", path: "/", wantStatus: 200, wantBody: "upstream", upstream: true,
			check: func(t *testing.T, up *http.Request) {
				if got := up.Header.Get("X-Filtered"); got != "1" {
					t.Errorf("upstream X-Filtered = %q, want 1", got)
				}
			}},
		{guest: "deny", path: "/", wantStatus: 403, wantBody: "forbidden\n", wantHeader: map[string]string{"X-Denied-By": "deny"}},
		{guest: "respheaders", path: "/404", wantStatus: 410, wantBody: "missing", upstream: true,
			wantHeader: map[string]string{"X-Filter": "rewritten"}, noHeader: []string{"X-Secret"}},
		{guest: "respheaders", path: "/", wantStatus: 200, wantBody: "upstream", upstream: true,
			wantHeader: map[string]string{"X-Filter": "rewritten"}},
		{guest: "body", path: "/hello", wantStatus: 200, wantBody: "<<hello>>", upstream: true,
			wantHeader: map[string]string{"Content-Length": "9"}},
		{guest: "config", config: `{"audience":"shop"}`, path: "/", wantStatus: 200, wantBody: `{"audience":"shop"}`},
		{guest: "reactor", path: "/", wantStatus: 200, wantBody: "ready"},
	}
	for _, tc := range tests {
		t.Run(tc.guest+tc.path, func(t *testing.T) {
			up := &upstream{}
			f := newFilter(t, h, FilterSpec{Name: tc.guest, Module: guest(tc.guest), Config: []byte(tc.config)})
			srv := serve(t, f.Middleware(up))
			resp, body := do(t, srv.Client(), http.MethodGet, srv.URL+tc.path, nil, nil)
			if resp.StatusCode != tc.wantStatus || body != tc.wantBody {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, body, tc.wantStatus, tc.wantBody)
			}
			for k, v := range tc.wantHeader {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			for _, k := range tc.noHeader {
				if v, ok := resp.Header[k]; ok {
					t.Errorf("header %s = %q, want none", k, v)
				}
			}
			if reached := up.hits.Load() > 0; reached != tc.upstream {
				t.Errorf("upstream reached = %v, want %v", reached, tc.upstream)
			}
			if tc.check != nil && up.lastRequest() != nil {
				tc.check(t, up.lastRequest())
			}
			if s := f.Stats(); s.Traps+s.Deadlines+s.MemoryCaps+s.Busy != 0 {
				t.Errorf("unexpected failures: %+v", s)
			}
		})
	}
}

// TestFailures: each failing guest gives a precise error naming the filter,
// is answered per policy, and the filter keeps serving other requests.
func TestFailures(t *testing.T) {
	for _, mode := range []struct {
		name string
		i    Interrupt
	}{{"fuel", InterruptFuel}, {"context", InterruptContext}} {
		t.Run(mode.name, func(t *testing.T) { testFailures(t, mode.i) })
	}
}

func testFailures(t *testing.T, mode Interrupt) {
	h, logs := bufferedHost(t, Config{Interrupt: mode, MemoryLimitPages: 16, Timeout: 50 * time.Millisecond, DeadlineTick: 2 * time.Millisecond})
	tests := []struct {
		guest   string
		header  string
		fail    FailPolicy
		want    int    // status of the failing request
		wantLog string // in the error log line
		counter func(Stats) uint64
	}{
		{"loop", "x-loop", FailClosed, 500, "filter loop: handle_request: deadline exceeded", func(s Stats) uint64 { return s.Deadlines }},
		{"trap", "x-trap", FailClosed, 500, "filter trap: handle_request: trap: wasm error: unreachable", func(s Stats) uint64 { return s.Traps }},
		{"membomb", "x-bomb", FailClosed, 500, "filter membomb: handle_request: memory cap exceeded", func(s Stats) uint64 { return s.MemoryCaps }},
		{"badptr", "", FailClosed, 500, "filter badptr: handle_request: trap: http_handler.get_header_values: name [65530, +100) is outside guest memory (65536 bytes)", func(s Stats) uint64 { return s.Traps }},
		{"trap", "x-trap", FailOpen, 200, "filter trap-open: handle_request: trap", func(s Stats) uint64 { return s.FailedOpen }},
	}
	for _, tc := range tests {
		name := tc.guest
		if tc.fail == FailOpen {
			name += "-open"
		}
		t.Run(name, func(t *testing.T) {
			up := &upstream{}
			spec := FilterSpec{Name: name, Module: guest(tc.guest), Fail: tc.fail, Pool: PoolConfig{Min: 1, Max: 2}}
			if tc.guest == "membomb" {
				// Growing to the cap must not race the 50 ms deadline on
				// a loaded machine: this case is about the cap.
				spec.Timeout = time.Minute
			}
			f := newFilter(t, h, spec)
			srv := serve(t, f.Middleware(up))
			hdr := map[string]string{}
			if tc.header != "" {
				hdr[tc.header] = "1"
			}
			resp, body := do(t, srv.Client(), http.MethodGet, srv.URL+"/", hdr, nil)
			if resp.StatusCode != tc.want {
				t.Errorf("failing request: status %d %q, want %d", resp.StatusCode, body, tc.want)
			}
			if tc.fail == FailClosed && body != "sluice: filter failed "+name+"\n" {
				t.Errorf("failing request body %q", body)
			}
			if !strings.Contains(logs.String(), tc.wantLog) {
				t.Errorf("log does not contain %q:\n%s", tc.wantLog, logs.String())
			}
			if got := tc.counter(f.Stats()); got != 1 {
				t.Errorf("counter = %d, want 1 (%+v)", got, f.Stats())
			}
			if tc.header == "" {
				return // badptr fails every request
			}
			// The rest keeps serving, on replacement instances.
			for i := 0; i < 3; i++ {
				resp, body = do(t, srv.Client(), http.MethodGet, srv.URL+"/", nil, nil)
				if resp.StatusCode != 200 || body != "upstream" {
					t.Fatalf("healthy request %d: %d %q", i, resp.StatusCode, body)
				}
			}
			if s := f.Stats(); s.Pool.Discards != 1 {
				t.Errorf("discards = %d, want 1", s.Pool.Discards)
			}
		})
	}
}

// TestLoopDoesNotBlockOthers: while one request spins until its deadline,
// other requests of the same filter are served.
func TestLoopDoesNotBlockOthers(t *testing.T) {
	for _, mode := range []Interrupt{InterruptFuel, InterruptContext} {
		testLoopDoesNotBlockOthers(t, mode)
	}
}

func testLoopDoesNotBlockOthers(t *testing.T, mode Interrupt) {
	h, _ := bufferedHost(t, Config{Interrupt: mode, Timeout: 300 * time.Millisecond})
	f := newFilter(t, h, FilterSpec{Name: "loop", Module: guest("loop"), Pool: PoolConfig{Min: 2, Max: 4}})
	srv := serve(t, f.Middleware(&upstream{}))
	done := make(chan int)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		req.Header.Set("x-loop", "1")
		resp, err := srv.Client().Do(req)
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	for i := 0; i < 20; i++ {
		resp, _ := do(t, srv.Client(), http.MethodGet, srv.URL, nil, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("request %d while another loops: %d", i, resp.StatusCode)
		}
	}
	if code := <-done; code != 500 {
		t.Errorf("looping request: %d, want 500", code)
	}
	if d := f.Stats().Deadlines; d != 1 {
		t.Errorf("deadlines = %d, want 1", d)
	}
}

func TestLoadRefused(t *testing.T) {
	h := newHost(t, Config{MemoryLimitPages: 1})
	noop, err := os.ReadFile("testdata/noop.wasm")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(noop)
	wrong := strings.Repeat("0", 64)
	tests := []struct {
		name string
		src  Source
		want string
	}{
		{"noexports", guest("noexports"), `filter noexports: module testdata/noexports.wasm: not an http-wasm guest: missing export "handle_request"; missing export "handle_response"`},
		{"digest", Source{Path: "testdata/noop.wasm", SHA256: wrong}, "filter digest: module testdata/noop.wasm: sha256 mismatch: want " + wrong + ", got " + hex.EncodeToString(sum[:])},
		{"baddigest", Source{Path: "testdata/noop.wasm", SHA256: "xyz"}, `sha256 "xyz" is not 64 hex digits`},
		{"missing", Source{Path: "testdata/nope.wasm"}, "filter missing: module testdata/nope.wasm: open testdata/nope.wasm: no such file or directory"},
		{"two", Source{Path: "testdata/noop.wasm", Bytes: noop}, "exactly one of path, url and bytes must be set"},
		{"garbage", Source{Bytes: []byte("not wasm")}, "filter garbage: module <8 bytes>: compile: invalid magic number"},
		{"http", Source{URL: "http://127.0.0.1:1/x.wasm", SHA256: hex.EncodeToString(sum[:])}, `url scheme "http": only https is allowed`},
		{"nosum", Source{URL: "https://127.0.0.1:1/x.wasm"}, "an https module needs its sha256"},
		{"bigmem", guest("body"), "filter bigmem: module testdata/body.wasm: compile: section memory: min 2 pages (128 Ki) over limit of 1 pages"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.NewFilter(context.Background(), FilterSpec{Name: tc.name, Module: tc.src})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	if n := h.Modules(); n != 0 {
		t.Errorf("%d modules held after failed loads", n)
	}
}

func TestHTTPSFetch(t *testing.T) {
	noop, err := os.ReadFile("testdata/noop.wasm")
	if err != nil {
		t.Fatal(err)
	}
	var fetches atomic.Int64
	files := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		if r.URL.Path != "/noop.wasm" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(noop)
	}))
	t.Cleanup(files.Close)
	h := newHost(t, Config{HTTPClient: files.Client()})
	sum := sha256.Sum256(noop)
	digest := hex.EncodeToString(sum[:])

	_, err = h.NewFilter(context.Background(), FilterSpec{Name: "bad", Module: Source{URL: files.URL + "/noop.wasm", SHA256: strings.Repeat("a", 64)}})
	if err == nil || !strings.Contains(err.Error(), "sha256 mismatch") {
		t.Fatalf("mismatch: err = %v", err)
	}
	_, err = h.NewFilter(context.Background(), FilterSpec{Name: "404", Module: Source{URL: files.URL + "/other.wasm", SHA256: digest}})
	if err == nil || !strings.Contains(err.Error(), "status 404") {
		t.Fatalf("404: err = %v", err)
	}
	f1 := newFilter(t, h, FilterSpec{Name: "a", Module: Source{URL: files.URL + "/noop.wasm", SHA256: digest}})
	before := fetches.Load()
	f2 := newFilter(t, h, FilterSpec{Name: "b", Module: Source{URL: files.URL + "/noop.wasm", SHA256: strings.ToUpper(digest)}})
	if fetches.Load() != before {
		t.Error("an already compiled digest was fetched again")
	}
	// The same bytes from a file share the compiled module too.
	f3 := newFilter(t, h, FilterSpec{Name: "c", Module: guest("noop")})
	if f1.Digest() != digest || f2.Digest() != digest || f3.Digest() != digest {
		t.Errorf("digests %s %s %s, want %s", f1.Digest(), f2.Digest(), f3.Digest(), digest)
	}
	if n := h.Modules(); n != 1 {
		t.Errorf("compiled modules = %d, want 1 shared", n)
	}
	for _, f := range []*Filter{f1, f2, f3} {
		f.Close()
		<-f.Drained()
	}
	waitFor(t, func() bool { return h.Modules() == 0 }, "the shared module was not closed after its last filter")
}

func waitFor(t testing.TB, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestClosedFilter(t *testing.T) {
	h := newHost(t, Config{})
	f := newFilter(t, h, FilterSpec{Name: "gone", Module: guest("noop")})
	f.Close()
	rec := httptest.NewRecorder()
	f.Middleware(&upstream{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != 503 || rec.Body.String() != "sluice: filter unavailable gone\n" {
		t.Errorf("closed filter answered %d %q", rec.Code, rec.Body.String())
	}
}

func TestFailPolicyParse(t *testing.T) {
	for in, want := range map[string]FailPolicy{"": FailClosed, "closed": FailClosed, "open": FailOpen} {
		if got, err := ParseFailPolicy(in); err != nil || got != want {
			t.Errorf("ParseFailPolicy(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseFailPolicy("ajar"); err == nil || err.Error() != `fail policy "ajar": want closed or open` {
		t.Errorf("err = %v", err)
	}
}

func TestFilterErrorUnwrap(t *testing.T) {
	inner := guestErr("http_handler.log", "bad")
	err := &FilterError{Filter: "x", Phase: "handle_request", Kind: FailureTrap, Err: inner}
	if !errors.Is(err, ErrGuest) {
		t.Error("errors.Is(err, ErrGuest) = false")
	}
	if got := err.Error(); got != "filter x: handle_request: trap: http_handler.log: bad" {
		t.Errorf("Error() = %q", got)
	}
}

// TestRewriteFallback: a module the rewriter refuses still loads, runs in
// the close-on-context-done runtime (logged), and stays interruptible.
func TestRewriteFallback(t *testing.T) {
	saved := rewriteModule
	rewriteModule = func([]byte) ([]byte, error) { return nil, errors.New("unsupported: test") }
	t.Cleanup(func() { rewriteModule = saved })
	h, logs := bufferedHost(t, Config{Timeout: 50 * time.Millisecond, DeadlineTick: 2 * time.Millisecond})
	f := newFilter(t, h, FilterSpec{Name: "fallback", Module: guest("loop")})
	if f.mod.fuel || f.mod.rt != h.rtCtx {
		t.Fatal("module not in the close-on-context-done runtime")
	}
	if !strings.Contains(logs.String(), `msg="module not instrumented: using close-on-context-done" filter=fallback`) {
		t.Errorf("fallback not logged:\n%s", logs.String())
	}
	srv := serve(t, f.Middleware(&upstream{}))
	if resp, _ := do(t, srv.Client(), http.MethodGet, srv.URL, map[string]string{"x-loop": "1"}, nil); resp.StatusCode != 500 {
		t.Errorf("looping request: %d", resp.StatusCode)
	}
	if resp, body := do(t, srv.Client(), http.MethodGet, srv.URL, nil, nil); resp.StatusCode != 200 || body != "upstream" {
		t.Errorf("healthy request: %d %q", resp.StatusCode, body)
	}
	if s := f.Stats(); s.Deadlines != 1 {
		t.Errorf("deadlines %d", s.Deadlines)
	}
}

// TestResponseTrailers: a trailer set in handle_response reaches the
// client over HTTP/1.1 and HTTP/2, streaming and buffered; a header set
// there only takes effect when the response is buffered.
func TestResponseTrailers(t *testing.T) {
	h := newHost(t, Config{})
	f := newFilter(t, h, FilterSpec{Name: "trailers", Module: guest("trailers")})
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte("body"))
	})
	h1 := serve(t, f.Middleware(up))
	h2 := httptest.NewUnstartedServer(f.Middleware(up))
	h2.EnableHTTP2 = true
	h2.StartTLS()
	t.Cleanup(h2.Close)
	for _, srv := range []*httptest.Server{h1, h2} {
		for _, buffered := range []bool{false, true} {
			hdr := map[string]string{}
			if buffered {
				hdr["x-buffer"] = "1"
			}
			resp, body := do(t, srv.Client(), http.MethodGet, srv.URL, hdr, nil)
			if resp.StatusCode != http.StatusAccepted || body != "body" {
				t.Errorf("%s buffered=%v: %d %q", resp.Proto, buffered, resp.StatusCode, body)
			}
			if got := resp.Trailer.Get("Grpc-Status"); got != "7" {
				t.Errorf("%s buffered=%v: trailer Grpc-Status = %q (trailers %v)", resp.Proto, buffered, got, resp.Trailer)
			}
			want := ""
			if buffered {
				want = "2"
			}
			if got := resp.Header.Get("X-Saw-Status"); got != want {
				t.Errorf("%s buffered=%v: X-Saw-Status = %q, want %q", resp.Proto, buffered, got, want)
			}
		}
	}
}

// TestStartSectionLoop: a module whose start section never returns is
// refused by its instantiation deadline instead of hanging.
func TestStartSectionLoop(t *testing.T) {
	h := newHost(t, Config{Timeout: 20 * time.Millisecond, DeadlineTick: 2 * time.Millisecond})
	_, err := h.NewFilter(context.Background(), FilterSpec{Name: "startloop", Module: guest("startloop"), Pool: PoolConfig{Min: 1}})
	want := "filter startloop: instantiate: deadline exceeded: start section exceeded its deadline of 200ms"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	waitFor(t, func() bool { return h.Modules() == 0 }, "module still held after the failed filter")
}

// TestFilterSpecEnv: a FilterSpec's environment must be representable in
// WASI; a bad one is refused naming the filter.
func TestFilterSpecEnv(t *testing.T) {
	h := newHost(t, Config{})
	for _, env := range []map[string]string{{"": "x"}, {"A=B": "x"}, {"A": "x\x00y"}} {
		_, err := h.NewFilter(context.Background(), FilterSpec{Name: "envy", Module: guest("noop"), Env: env})
		if err == nil || !strings.Contains(err.Error(), "filter envy: env") {
			t.Errorf("env %q: err %v, want a refusal naming the filter", env, err)
		}
	}
	f, err := h.NewFilter(context.Background(), FilterSpec{Name: "envy", Module: guest("noop"), Env: map[string]string{"GOGC": "50", "X": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
}
