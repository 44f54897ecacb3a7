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

	b.Run("direct", func(b *testing.B) { benchGets(b, be.URL, body) })
	rt := prefix("/", backend("default/bench:80", addr(be)))
	plain := benchProxy(b, Options{}, rt)
	b.Run("proxy", func(b *testing.B) { benchGets(b, plain.URL, body) })
	logged := benchProxy(b, Options{AccessLog: true, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))}, rt)
	b.Run("proxy-accesslog", func(b *testing.B) { benchGets(b, logged.URL, body) })
}

// benchProxy serves a Handler with opts on 127.0.0.1 whose one route,
// rt, is bench.example's; both are closed when b ends.
func benchProxy(b *testing.B, opts Options, rt *model.Route) *httptest.Server {
	h := New(opts)
	snap := &model.Snapshot{Hosts: []*model.VirtualHost{{Name: "bench.example", Routes: []*model.Route{rt}}}}
	tbl, err := route.Compile(snap, upstream.NewSet(upstream.Options{}).Sync(snap))
	if err != nil {
		b.Fatal(err)
	}
	h.Swap(tbl)
	srv := httptest.NewServer(h)
	b.Cleanup(func() { srv.Close(); h.Close() })
	return srv
}

// benchGets is the loop of the proxy benchmarks: keep-alive GETs of
// bench.example at url, each answered 200 with body.
func benchGets(b *testing.B, url string, body []byte) {
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
