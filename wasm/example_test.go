package wasm_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"

	"github.com/sluicegw/sluice/wasm"
)

// A filter is loaded once per module digest and used as middleware in
// front of the route's handler (the gateway's reverse proxy).
func ExampleHost_NewFilter() {
	ctx := context.Background()
	host, err := wasm.NewHost(ctx, wasm.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer host.Close(ctx)

	deny, err := host.NewFilter(ctx, wasm.FilterSpec{
		Name:   "deny",
		Module: wasm.Source{Path: "testdata/deny.wasm"},
		Fail:   wasm.FailClosed,
		Pool:   wasm.PoolConfig{Min: 1, Max: 8},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer deny.Close()

	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "upstream") })
	handler := wasm.Chain(upstream, deny)

	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	fmt.Print(rec.Code, " ", rec.Body.String())
	// Output: 403 forbidden
}
