package proxy_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/core/internal/proxy"
	"github.com/sluicegw/sluice/core/internal/route"
	"github.com/sluicegw/sluice/core/internal/upstream"
)

// Example shows the wiring the gateway does: sync pools, compile, swap.
func Example() {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s", r.URL.Path)
	}))
	defer backend.Close()

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	pools := upstream.NewSet(upstream.Options{})
	h := proxy.New(proxy.Options{Logger: logger})
	defer h.Close()
	gw := httptest.NewServer(h)
	defer gw.Close()

	snap := &model.Snapshot{Hosts: []*model.VirtualHost{{
		Name: "web.example",
		Routes: []*model.Route{{
			PathType: model.PathPrefix,
			Path:     "/",
			Backend: &model.Backend{
				Name:      "default/web:80",
				Service:   model.ObjectRef{Kind: "Service", Namespace: "default", Name: "web"},
				Endpoints: []string{strings.TrimPrefix(backend.URL, "http://")},
			},
		}},
	}}}
	tbl, err := route.Compile(snap, pools.Sync(snap))
	if err != nil {
		fmt.Println(err) // keep serving the previous table
		return
	}
	h.Swap(tbl)

	req, _ := http.NewRequest(http.MethodGet, gw.URL+"/a/../b", nil)
	req.Host = "web.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(body))
	// Output: 200 hello from /b
}
