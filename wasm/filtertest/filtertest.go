// Package filtertest runs a filter's .wasm in a real wasm.Host inside a Go
// test: requests go through the same code path as on a gateway route
// (pooled instances, deadlines, memory cap, failure policy), to an
// in-process upstream, and the result says what the client and the
// upstream saw. It is what filter authors use to test a built filter;
// package sdk/sdktest runs the same filter natively, with a Result of the
// same shape.
//
//	h := filtertest.Load(t, "myfilter.wasm", filtertest.Options{Config: []byte(`{"rate":5}`)})
//	res := h.Do(httptest.NewRequest("GET", "/", nil))
//	if res.Status != 200 || !res.Next { … }
//
// Requests are not sent over a network: r.TLS and r.RemoteAddr reach the
// filter as they are, so a test can give the filter a client certificate
// (sluice.tls_peer_*) without a TLS handshake.
package filtertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/sluicegw/sluice/wasm"
)

// Options configure a Harness. The zero value is usable.
type Options struct {
	// Name is the filter's name (logs, metric and store scoping).
	// Default "test".
	Name string
	// Config is the filter's per-route config (get_config), JSON.
	Config []byte
	// Fail is the failure policy; default wasm.FailClosed.
	Fail wasm.FailPolicy
	// Pool sizes the instance pool; default one warm instance, at most 4.
	Pool wasm.PoolConfig
	// Upstream answers requests the filter lets through. Default: 200
	// with the body "upstream\n".
	Upstream http.Handler
	// Host configures the wasm.Host (store, metrics, guest environment,
	// limits). Logger defaults to one that keeps the lines for Logs;
	// Metrics defaults to a wasm.MemoryMetrics that Metric reads.
	Host wasm.Config
}

// Result is what the client and the upstream saw for one request.
type Result struct {
	// Next is true when the request reached the upstream.
	Next bool
	// Status, Header, Trailer and Body are the response the client got.
	Status  int
	Header  http.Header
	Trailer http.Header
	Body    []byte
	// Upstream is the request as the upstream received it (nil when the
	// filter answered itself), with its body in UpstreamBody.
	Upstream     *http.Request
	UpstreamBody []byte
}

// Harness is one filter loaded in its own wasm.Host. Do is safe for
// concurrent use. Close releases the filter and the host.
type Harness struct {
	host    *wasm.Host
	filter  *wasm.Filter
	handler http.Handler
	metrics *wasm.MemoryMetrics
	logs    *logBuffer
}

// New loads the module at path (a .wasm file) into a new host.
func New(path string, opts Options) (*Harness, error) {
	ctx := context.Background()
	h := &Harness{logs: &logBuffer{}}
	cfg := opts.Host
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if cfg.Metrics == nil {
		h.metrics = &wasm.MemoryMetrics{}
		cfg.Metrics = h.metrics
	}
	host, err := wasm.NewHost(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("filtertest %s: %w", path, err)
	}
	h.host = host
	if opts.Name == "" {
		opts.Name = "test"
	}
	if opts.Pool.Min == 0 && opts.Pool.Max == 0 {
		opts.Pool = wasm.PoolConfig{Min: 1, Max: 4}
	}
	f, err := host.NewFilter(ctx, wasm.FilterSpec{
		Name: opts.Name, Module: wasm.Source{Path: path}, Config: opts.Config, Fail: opts.Fail, Pool: opts.Pool,
	})
	if err != nil {
		_ = h.Close()
		return nil, fmt.Errorf("filtertest %s: %w", path, err)
	}
	h.filter = f
	up := opts.Upstream
	if up == nil {
		up = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "upstream\n") })
	}
	h.handler = f.Middleware(&capture{next: up})
	return h, nil
}

// Load is New for tests: it fails t if the module cannot be loaded and
// closes the harness when the test ends.
func Load(t testing.TB, path string, opts Options) *Harness {
	t.Helper()
	h, err := New(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Error(err)
		}
	})
	return h
}

// Close closes the filter and the host. It copes with a harness that New
// did not finish and may be called more than once.
func (h *Harness) Close() error {
	if h.filter != nil {
		h.filter.Close()
		<-h.filter.Drained()
	}
	if h.host != nil {
		return h.host.Close(context.Background())
	}
	return nil
}

// Filter returns the loaded filter (for its Stats).
func (h *Harness) Filter() *wasm.Filter { return h.filter }

// Metric returns the total of the filter's metric name (when
// Options.Host.Metrics was left nil).
func (h *Harness) Metric(name string) int64 {
	if h.metrics == nil {
		return 0
	}
	return h.metrics.Get(h.filter.Name(), name)
}

// Logs returns what the host logged so far (guest logs, stdout and
// stderr, failures), one text line each (when Options.Host.Logger was left
// nil).
func (h *Harness) Logs() []string { return h.logs.lines() }

// Do sends r through the filter and returns what the client and the
// upstream saw. r's body is read; r is not otherwise modified.
func (h *Harness) Do(r *http.Request) Result {
	c := &captured{}
	r = r.WithContext(context.WithValue(r.Context(), captureKey{}, c))
	rec := httptest.NewRecorder()
	h.handler.ServeHTTP(rec, r)
	resp := rec.Result()
	body, _ := io.ReadAll(resp.Body)
	return Result{
		Next: c.req != nil, Status: resp.StatusCode, Header: resp.Header, Trailer: resp.Trailer, Body: body,
		Upstream: c.req, UpstreamBody: c.body,
	}
}

type captureKey struct{}

type captured struct {
	req  *http.Request
	body []byte
}

// capture records the request the upstream receives, then passes it on
// with its body intact.
type capture struct{ next http.Handler }

func (c *capture) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if got, ok := r.Context().Value(captureKey{}).(*captured); ok {
		var b []byte
		if r.Body != nil {
			b, _ = io.ReadAll(r.Body)
		}
		got.req, got.body = r.Clone(r.Context()), b
		got.req.Body = io.NopCloser(bytes.NewReader(b))
		r.Body = io.NopCloser(bytes.NewReader(b))
	}
	c.next.ServeHTTP(w, r)
}

// logBuffer keeps log lines; safe for concurrent writes.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := strings.TrimSuffix(l.b.String(), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// BuildGo builds the standard-Go filter in dir (a main package using the
// SDK) into out with the Go toolchain running the caller:
// GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -o out .
// GOWORK is off so the filter's own go.mod decides its dependencies.
// -trimpath keeps the folder out of the module, so the same source gives
// the same digest wherever it is built (sha256 pins, compilation cache).
func BuildGo(dir, out string) error {
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		if gobin, err = exec.LookPath("go"); err != nil {
			return errors.New("filtertest: the go command is needed to build a Go filter")
		}
	}
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	cmd := exec.Command(gobin, "build", "-buildmode=c-shared", "-trimpath", "-o", abs, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("filtertest: building the Go filter in %s: %w\n%s", dir, err, b)
	}
	return nil
}
