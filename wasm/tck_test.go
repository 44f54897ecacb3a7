package wasm

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sluicegw/sluice/wasm/tck"
)

// TestTCK runs the http-wasm conformance kit guest through the middleware
// in front of a reverse proxy to the echo backend, over HTTP/1.1 and over
// HTTP/2 with TLS.
func TestTCK(t *testing.T) {
	t.Run("fuel", func(t *testing.T) { testTCK(t, InterruptFuel) })
	t.Run("context", func(t *testing.T) { testTCK(t, InterruptContext) })
}

func testTCK(t *testing.T, mode Interrupt) {
	h := newHost(t, Config{Interrupt: mode})
	f := newFilter(t, h, FilterSpec{Name: "tck", Module: Source{Path: tckPath(t)}, Pool: PoolConfig{Min: 1, Max: 4}})
	echo := serve(t, tck.EchoHandler())
	front := f.Middleware(proxyTo(t, echo.URL))

	t.Run("HTTP/1.1", func(t *testing.T) {
		srv := serve(t, front)
		tck.Run(t, srv.URL, srv.Client())
	})
	t.Run("HTTP/2", func(t *testing.T) {
		srv := httptest.NewUnstartedServer(front)
		srv.EnableHTTP2 = true
		srv.StartTLS()
		t.Cleanup(srv.Close)
		client := srv.Client()
		resp, _ := do(t, client, http.MethodGet, srv.URL+"/", map[string]string{"x-httpwasm-tck-testid": "get_method/GET"}, nil)
		if resp.ProtoMajor != 2 {
			t.Fatalf("server spoke %s, want HTTP/2", resp.Proto)
		}
		tck.Run(t, srv.URL, client)
	})
	if s := f.Stats(); s.Traps+s.Deadlines+s.MemoryCaps+s.Busy != 0 {
		t.Errorf("failures during the TCK: %+v", s)
	}
}
