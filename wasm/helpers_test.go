package wasm

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"testing"
)

// repoRoot walks up from the test's directory to the folder with go.mod.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// tckPath is ../shared/tck/http-wasm-tck.wasm next to the repository. The
// test fails (never skips) when it is absent.
func tckPath(t testing.TB) string {
	t.Helper()
	p := filepath.Join(repoRoot(t), "..", "shared", "tck", "http-wasm-tck.wasm")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("the http-wasm TCK guest is missing: %v (it is expected at ../shared/tck/http-wasm-tck.wasm relative to the repository root)", err)
	}
	return p
}

func guest(name string) Source { return Source{Path: filepath.Join("testdata", name+".wasm")} }

// testLogger discards unless -v.
func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newHost(t testing.TB, cfg Config) *Host {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	h, err := NewHost(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	return h
}

func newFilter(t testing.TB, h *Host, spec FilterSpec) *Filter {
	t.Helper()
	f, err := h.NewFilter(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

// proxyTo is a reverse proxy to an upstream server, as the gateway has.
func proxyTo(t testing.TB, upstream string) http.Handler {
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	return &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(u) }}
}

// serve starts h on 127.0.0.1 (HTTP/1.1) and returns its URL.
func serve(t testing.TB, h http.Handler) *httptest.Server {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// do sends a request and returns the response with its body read.
func do(t testing.TB, client *http.Client, method, u string, hdr map[string]string, body io.Reader) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}
