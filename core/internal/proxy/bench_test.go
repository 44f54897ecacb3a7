package proxy

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/core/internal/route"
	"github.com/sluicegw/sluice/core/internal/upstream"
)

// BenchmarkProxy sends the same GET directly to a backend and through the
// proxy handler (served by a real http.Server on 127.0.0.1), in the same
// run. Allocations count the whole process: client, proxy and backend.
func BenchmarkProxy(b *testing.B) {
	body := []byte("hello, world\n")
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	}))
	defer be.Close()

	newProxy := func(opts Options) *httptest.Server {
		h := New(opts)
		snap := &model.Snapshot{Hosts: []*model.VirtualHost{{Name: "bench.example", Routes: []*model.Route{
			prefix("/", backend("default/bench:80", addr(be))),
		}}}}
		tbl, err := route.Compile(snap, upstream.NewSet(upstream.Options{}).Sync(snap))
		if err != nil {
			b.Fatal(err)
		}
		h.Swap(tbl)
		srv := httptest.NewServer(h)
		b.Cleanup(func() { srv.Close(); h.Close() })
		return srv
	}
	run := func(b *testing.B, url string) {
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		defer client.CloseIdleConnections()
		req, _ := http.NewRequest(http.MethodGet, url+"/api/v1/items?id=7", nil)
		req.Host = "bench.example"
		b.ReportAllocs()
		for b.Loop() {
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || n != int64(len(body)) {
				b.Fatalf("status %d, %d bytes", resp.StatusCode, n)
			}
		}
	}
	b.Run("direct", func(b *testing.B) { run(b, be.URL) })
	plain := newProxy(Options{})
	b.Run("proxy", func(b *testing.B) { run(b, plain.URL) })
	logged := newProxy(Options{AccessLog: true, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	b.Run("proxy-accesslog", func(b *testing.B) { run(b, logged.URL) })
}
