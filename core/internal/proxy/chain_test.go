package proxy

import (
	"net/http"
	"testing"

	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/core/internal/route"
)

// TestChains: a route's chain runs before the upstream, may change the
// request it forwards, and may answer early without reaching the upstream.
func TestChains(t *testing.T) {
	be := echoBackend(t, "a")
	b := backend("default/a:80", addr(be))
	filtered := prefix("/f", b)
	early := prefix("/deny", b)
	plain := prefix("/", b)
	snap := &model.Snapshot{Hosts: []*model.VirtualHost{{Name: "x.test", Routes: []*model.Route{early, filtered, plain}}}}

	g := newGateway(t, Options{})
	var sawPath string
	chains := map[*model.Route]http.Handler{
		filtered: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sawPath = r.URL.Path
			r.Header.Set("X-Filter", "ran")
			r.URL.Path = "/rewritten"
			w.Header().Set("X-Filter-Response", "yes")
			g.h.Forward().ServeHTTP(w, r)
		}),
		early: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "denied by filter", http.StatusForbidden)
		}),
	}
	tbl, err := route.CompileWithChains(snap, g.pools.Sync(snap), chains)
	if err != nil {
		t.Fatal(err)
	}
	g.h.Swap(tbl)

	r := g.get(t, "x.test", "/f//sub/../x")
	if r.code != 200 || r.seen.Header.Get("X-Filter") != "ran" || r.seen.Path != "/rewritten" || r.hdr.Get("X-Filter-Response") != "yes" {
		t.Fatalf("filtered route: %d %+v %v", r.code, r.seen, r.hdr)
	}
	if sawPath != "/f/x" {
		t.Errorf("the chain saw path %q, want the normalized /f/x", sawPath)
	}
	r = g.get(t, "x.test", "/deny")
	if r.code != 403 || r.seen.Name != "" {
		t.Fatalf("early answer: %d, upstream saw %+v", r.code, r.seen)
	}
	if st := g.pools.Get("default/a:80").Stats(); st[0].Requests != 1 {
		t.Errorf("upstream picks = %d, want 1 (the early answer must not pick an endpoint)", st[0].Requests)
	}
	r = g.get(t, "x.test", "/other", "X-Filter", "spoof")
	if r.code != 200 || r.seen.Header.Get("X-Filter") != "spoof" {
		t.Fatalf("route without a chain: %d %+v", r.code, r.seen)
	}

	// Forward outside ServeHTTP is an internal error, never a panic.
	rec := &recorderW{h: http.Header{}}
	g.h.Forward().ServeHTTP(rec, mustReq(t))
	if rec.code != http.StatusInternalServerError {
		t.Fatalf("Forward without a route: %d", rec.code)
	}
}

type recorderW struct {
	h    http.Header
	code int
}

func (r *recorderW) Header() http.Header         { return r.h }
func (r *recorderW) WriteHeader(c int)           { r.code = c }
func (r *recorderW) Write(p []byte) (int, error) { return len(p), nil }

func mustReq(t *testing.T) *http.Request {
	r, err := http.NewRequest("GET", "http://x.test/", nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
