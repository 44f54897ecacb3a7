package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/core/internal/route"
	"github.com/sluicegw/sluice/core/internal/upstream"
)

// BenchmarkApplyRoute measures Match plus the routing hook of ServeHTTP
// for each kind of route, without the network: "plain" (no routing
// annotation) is the baseline of the same run.
func BenchmarkApplyRoute(b *testing.B) {
	be := backend("default/a:80", "127.0.0.1:1")
	rewrite := prefix("/re/(v[0-9]+)/(.*)", be)
	rewrite.PathType, rewrite.Rewrite = model.PathRegex, "/$1/$2"
	cors := prefix("/cors", be)
	cors.CORS = &model.CORS{AllowOrigins: []string{"https://a.example", "https://*.b.example"}, AllowMethods: "GET", AllowHeaders: "X-A", AllowCredentials: true, MaxAge: 60}
	canary := prefix("/canary", be)
	canary.Canary = &model.Canary{Backend: backend("default/c:80", "127.0.0.1:2"), Header: "X-Canary", Weight: 20, WeightTotal: 100}
	redirect := prefix("/old", be)
	redirect.Redirect = &model.Redirect{URL: "https://new.example/", Code: 301}
	snap := &model.Snapshot{Hosts: []*model.VirtualHost{{Name: "x.test", Routes: []*model.Route{
		prefix("/plain", be), rewrite, cors, canary, redirect,
	}}}}
	tbl, err := route.Compile(snap, upstream.NewSet(upstream.Options{}).Sync(snap))
	if err != nil {
		b.Fatal(err)
	}
	h := New(Options{})
	for _, c := range []struct {
		name, method, path string
		hdr                []string
	}{
		{"plain", "GET", "/plain/items/7", nil},
		{"rewrite", "GET", "/re/v2/items/7", nil},
		{"cors-simple", "GET", "/cors/items/7", []string{"Origin", "https://x.b.example"}},
		{"cors-preflight", "OPTIONS", "/cors/items/7", []string{"Origin", "https://a.example"}},
		{"canary-weight", "GET", "/canary/items/7", nil},
		{"canary-header", "GET", "/canary/items/7", []string{"X-Canary", "always"}},
		{"redirect", "GET", "/old/items/7", nil},
	} {
		req := httptest.NewRequest(c.method, "http://x.test"+c.path, nil)
		for i := 0; i+1 < len(c.hdr); i += 2 {
			req.Header.Set(c.hdr[i], c.hdr[i+1])
		}
		b.Run(c.name, func(b *testing.B) {
			w := &recorderW{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				st := &reqState{res: tbl.Match(req.Host, req.URL.Path)}
				if st.res.Route == nil {
					b.Fatal("no route")
				}
				h.applyRoute(w, req, st)
			}
		})
	}
}
