package proxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/core/internal/route"
)

func regexRoute(path, rewrite string, b *model.Backend) *model.Route {
	r := prefix(path, b)
	r.PathType, r.Rewrite = model.PathRegex, rewrite
	return r
}

// TestRewrite: the upstream gets the rewrite target with the path regex's
// groups substituted, and the query nginx would send.
func TestRewrite(t *testing.T) {
	be := echoBackend(t, "a")
	b := backend("default/a:80", addr(be))
	snap := &model.Snapshot{Hosts: []*model.VirtualHost{{Name: "x.test", Routes: []*model.Route{
		regexRoute("/something(/|$)(.*)", "/$2", b),
		regexRoute("/swap/([a-z]+)/([0-9]+)", "/v2/$2/$1$9", b),
		regexRoute("/q/(.*)", "/search?term=$1", b),
		regexRoute("/fixed", "/", b),
		regexRoute("/dollar", "/$x/$", b),
		func() *model.Route { r := prefix("/plain", b); r.Rewrite = "/other$1"; return r }(),
	}}}}
	filtered := regexRoute("/filtered/(.*)", "/f/$1", b)
	snap.Hosts[0].Routes = append(snap.Hosts[0].Routes, filtered)
	g := newGateway(t, Options{})
	var chainSaw string
	tbl, err := route.CompileWithChains(snap, g.pools.Sync(snap), map[*model.Route]http.Handler{filtered: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chainSaw = r.URL.Path + "?" + r.URL.RawQuery
		g.h.Forward().ServeHTTP(w, r)
	})})
	if err != nil {
		t.Fatal(err)
	}
	g.h.Swap(tbl)
	// Filters see the rewritten path, and what they forward goes upstream.
	if r := g.get(t, "x.test", "/filtered/a/b?q=1"); r.code != 200 || r.seen.Path != "/f/a/b" || chainSaw != "/f/a/b?q=1" {
		t.Errorf("rewrite with a filter chain: %d, upstream path %q, the chain saw %q", r.code, r.seen.Path, chainSaw)
	}
	for _, tc := range []struct{ target, path, query string }{
		{"/something", "/", ""},
		{"/something/", "/", ""},
		{"/something/new", "/new", ""},
		{"/SOMETHING/New/Path?a=1", "/New/Path", "a=1"},
		{"/swap/abc/42/tail", "/v2/42/abc", ""},
		{"/q/go", "/search", "term=go"},
		{"/q/go?page=2", "/search", "term=go&page=2"},
		{"/fixed/anything/below", "/", ""},
		{"/fixedx", "/", ""}, // anchored at the start only, as nginx's ~* "^/fixed"
		{"/dollar", "/$x/$", ""},
		{"/plain/x", "/other", ""}, // not a regex route: no groups
	} {
		r := g.get(t, "x.test", tc.target)
		if r.code != 200 || r.seen.Path != tc.path || r.seen.Query != tc.query {
			t.Errorf("GET %s: %d, upstream saw path %q query %q; want %q %q", tc.target, r.code, r.seen.Path, r.seen.Query, tc.path, tc.query)
		}
	}
}

// TestRedirects: redirects and app-root are answered by the gateway with
// the right code and Location; nothing reaches the upstream.
func TestRedirects(t *testing.T) {
	be := echoBackend(t, "a")
	b := backend("default/a:80", addr(be))
	perm := prefix("/perm", b)
	perm.Redirect = &model.Redirect{URL: "https://new.example/landing", Code: 301}
	perm308 := prefix("/perm308", b)
	perm308.Redirect = &model.Redirect{URL: "https://new.example/", Code: 308}
	temp := prefix("/temp", b)
	temp.Redirect = &model.Redirect{URL: "http://other.example/x?y=1", Code: 302}
	root := prefix("/", b)
	root.AppRoot = "/app1"
	g := newGateway(t, Options{})
	snap := &model.Snapshot{Hosts: []*model.VirtualHost{{Name: "x.test", Routes: []*model.Route{perm308, perm, temp, root}}}}
	// A filter chain on a redirect route never runs: the gateway answers
	// first, as nginx answers before its access phase.
	chainRan := false
	tbl, err := route.CompileWithChains(snap, g.pools.Sync(snap), map[*model.Route]http.Handler{perm: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chainRan = true
		g.h.Forward().ServeHTTP(w, r)
	})})
	if err != nil {
		t.Fatal(err)
	}
	g.h.Swap(tbl)

	noFollow := *g.srv.Client()
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, tc := range []struct {
		method, target string
		code           int
		location       string
	}{
		{"GET", "/perm", 301, "https://new.example/landing"},
		{"POST", "/perm/deeper?q=1", 301, "https://new.example/landing"},
		{"GET", "/perm308", 308, "https://new.example/"},
		{"GET", "/temp", 302, "http://other.example/x?y=1"},
		{"HEAD", "/temp", 302, "http://other.example/x?y=1"},
		{"GET", "/", 302, "http://x.test/app1"},
		{"GET", "/other", 200, ""}, // app-root redirects "/" only
	} {
		req, err := http.NewRequest(tc.method, g.srv.URL+tc.target, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "x.test"
		r := do(t, &noFollow, req)
		if r.code != tc.code || r.hdr.Get("Location") != tc.location {
			t.Errorf("%s %s: %d Location %q, want %d %q", tc.method, tc.target, r.code, r.hdr.Get("Location"), tc.code, tc.location)
		}
		if tc.code != 200 && r.seen.Name != "" {
			t.Errorf("%s %s: the upstream was reached", tc.method, tc.target)
		}
		if tc.method == "HEAD" && r.body != "" {
			t.Errorf("HEAD %s: body %q", tc.target, r.body)
		}
	}
	if st := g.pools.Get("default/a:80").Stats(); st[0].Requests != 1 {
		t.Errorf("upstream picks = %d, want 1 (only GET /other)", st[0].Requests)
	}
	if chainRan {
		t.Error("the filter chain of a redirect route ran")
	}
}

// TestCORS: preflights are answered with 204, allowed origins get the
// headers (replacing the upstream's), other origins get none.
func TestCORS(t *testing.T) {
	up := echoBackend(t, "a")
	b := backend("default/a:80", addr(up))
	list := prefix("/list", b)
	list.CORS = &model.CORS{
		AllowOrigins:     []string{"https://app.example", "https://*.shop.example:8443"},
		AllowMethods:     "GET, POST",
		AllowHeaders:     "Content-Type, X-Token",
		ExposeHeaders:    "X-Total",
		AllowCredentials: true,
		MaxAge:           600,
	}
	any := prefix("/any", b)
	any.CORS = &model.CORS{AllowOrigins: []string{"*"}, AllowMethods: "GET", AllowHeaders: "DNT", MaxAge: 5}
	g := newGateway(t, Options{})
	var chainSaw string
	chains := map[*model.Route]http.Handler{list: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chainSaw = r.Method
		// The upstream (or a filter) sets its own CORS header: replaced.
		w.Header().Set("Access-Control-Allow-Origin", "https://evil.example")
		g.h.Forward().ServeHTTP(w, r)
	})}
	snap := &model.Snapshot{Hosts: []*model.VirtualHost{{Name: "x.test", Routes: []*model.Route{list, any}}}}
	tbl, err := route.CompileWithChains(snap, g.pools.Sync(snap), chains)
	if err != nil {
		t.Fatal(err)
	}
	g.h.Swap(tbl)

	req := func(method, path, origin string) response {
		t.Helper()
		rq, err := http.NewRequest(method, g.srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		rq.Host = "x.test"
		if origin != "" {
			rq.Header.Set("Origin", origin)
			rq.Header.Set("Access-Control-Request-Method", "POST")
		}
		return do(t, g.srv.Client(), rq)
	}

	// Preflight from an allowed origin: answered here, the chain never runs.
	r := req("OPTIONS", "/list/items", "https://app.example")
	want := map[string]string{
		"Access-Control-Allow-Origin":      "https://app.example",
		"Access-Control-Allow-Credentials": "true",
		"Access-Control-Allow-Methods":     "GET, POST",
		"Access-Control-Allow-Headers":     "Content-Type, X-Token",
		"Access-Control-Expose-Headers":    "X-Total",
		"Access-Control-Max-Age":           "600",
		"Vary":                             "Origin",
	}
	if r.code != 204 || r.seen.Name != "" || chainSaw != "" {
		t.Fatalf("preflight: %d, upstream saw %+v, chain saw %q", r.code, r.seen, chainSaw)
	}
	for k, v := range want {
		if got := r.hdr.Get(k); got != v {
			t.Errorf("preflight %s = %q, want %q", k, got, v)
		}
	}
	// Wildcard subdomain, one label only, port must match, any case.
	for origin, ok := range map[string]bool{
		"https://a.shop.example:8443":   true,
		"HTTPS://B-2.SHOP.example:8443": true,
		"https://a.b.shop.example:8443": false,
		"https://shop.example:8443":     false,
		"https://a.shop.example":        false,
		"http://a.shop.example:8443":    false,
		"https://app.example.evil":      false,
		"null":                          false,
	} {
		r := req("OPTIONS", "/list", origin)
		if got := r.code == 204 && r.hdr.Get("Access-Control-Allow-Origin") == origin; got != ok {
			t.Errorf("preflight from %q: %d %q, allowed = %v, want %v", origin, r.code, r.hdr.Get("Access-Control-Allow-Origin"), got, ok)
		}
	}
	// A simple request: proxied, the headers replace the upstream's.
	r = req("GET", "/list", "https://app.example")
	if r.code != 200 || r.seen.Name != "a" || r.hdr.Values("Access-Control-Allow-Origin")[0] != "https://app.example" || len(r.hdr.Values("Access-Control-Allow-Origin")) != 1 {
		t.Errorf("simple request: %d %v", r.code, r.hdr)
	}
	// A disallowed origin: proxied untouched, OPTIONS included.
	for _, m := range []string{"GET", "OPTIONS"} {
		r = req(m, "/list", "https://evil.example")
		if r.code != 200 || r.seen.Method != m || r.hdr.Get("Access-Control-Allow-Origin") != "https://evil.example" || r.hdr.Get("Access-Control-Allow-Methods") != "" {
			t.Errorf("%s from a disallowed origin: %d %+v %v", m, r.code, r.seen, r.hdr)
		}
	}
	// "*": any origin, no credentials, no Vary.
	r = req("OPTIONS", "/any", "https://whoever.example")
	if r.code != 204 || r.hdr.Get("Access-Control-Allow-Origin") != "*" || r.hdr.Get("Access-Control-Allow-Credentials") != "" || r.hdr.Get("Vary") != "" {
		t.Errorf("preflight on *: %d %v", r.code, r.hdr)
	}
	r = req("GET", "/any", "")
	if r.code != 200 || r.hdr.Get("Access-Control-Allow-Origin") != "*" || r.hdr.Get("Access-Control-Max-Age") != "5" {
		t.Errorf("GET on * without Origin: %d %v", r.code, r.hdr)
	}
}

// TestCanary: a weighted share of requests goes to the canary; the header
// and the cookie override the weight; filters run for canary requests too.
func TestCanary(t *testing.T) {
	mainUp, canUp := echoBackend(t, "main"), echoBackend(t, "canary")
	rt := prefix("/", backend("default/main:80", addr(mainUp)))
	rt.Canary = &model.Canary{
		Backend: backend("default/canary:80", addr(canUp)),
		Header:  "X-Canary", Cookie: "canary",
		Weight: 3, WeightTotal: 10,
	}
	byValue := prefix("/value", rt.Backend)
	byValue.Canary = &model.Canary{Backend: rt.Canary.Backend, Header: "X-Canary", HeaderValue: "yes", WeightTotal: 100}
	byPattern := prefix("/pattern", rt.Backend)
	byPattern.Canary = &model.Canary{Backend: rt.Canary.Backend, Header: "X-Canary", HeaderPattern: "^(beta|gamma)$", WeightTotal: 100}

	g := newGateway(t, Options{})
	filtered := 0
	snap := &model.Snapshot{Hosts: []*model.VirtualHost{{Name: "x.test", Routes: []*model.Route{byPattern, byValue, rt}}}}
	tbl, err := route.CompileWithChains(snap, g.pools.Sync(snap), map[*model.Route]http.Handler{rt: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		filtered++
		g.h.Forward().ServeHTTP(w, r)
	})})
	if err != nil {
		t.Fatal(err)
	}
	g.h.Swap(tbl)

	const n = 1000
	canary := 0
	for range n {
		switch r := g.get(t, "x.test", "/w"); r.seen.Name {
		case "canary":
			canary++
		case "main":
		default:
			t.Fatalf("GET /w: %d %q", r.code, r.body)
		}
	}
	// Weight 3 of 10: expect 300; the bounds are more than 5 standard
	// deviations (14.5) away, so the test fails by chance less than once in
	// ten million runs.
	if canary < 220 || canary > 380 || filtered != n {
		t.Errorf("canary got %d of %d requests, want about 300; the chain ran %d times", canary, n, filtered)
	}
	for _, tc := range []struct {
		path string
		hdr  []string
		want string
	}{
		{"/w", []string{"X-Canary", "always"}, "canary"},
		{"/w", []string{"X-Canary", "never", "Cookie", "canary=always"}, "main"}, // header first
		{"/w", []string{"Cookie", "canary=always"}, "canary"},
		{"/w", []string{"Cookie", "a=b; canary=never"}, "main"},
		{"/value", []string{"X-Canary", "yes"}, "canary"},
		{"/value", []string{"X-Canary", "always"}, "main"}, // with a value, only the value selects
		{"/value", nil, "main"},
		{"/pattern", []string{"X-Canary", "gamma"}, "canary"},
		{"/pattern", []string{"X-Canary", "delta"}, "main"},
	} {
		for range 20 { // never by chance
			if r := g.get(t, "x.test", tc.path, tc.hdr...); r.seen.Name != tc.want {
				t.Fatalf("GET %s %v: went to %q, want %q", tc.path, tc.hdr, r.seen.Name, tc.want)
			}
		}
	}
}

// TestRoutingHammer: many goroutines through rewrite, CORS and canary
// routes at once, while the table is swapped; every answer is right for
// its request (run with -race).
func TestRoutingHammer(t *testing.T) {
	mainUp, canUp := echoBackend(t, "main"), echoBackend(t, "canary")
	mk := func() *model.Snapshot {
		rw := regexRoute("/rw/(.*)", "/x/$1", backend("default/main:80", addr(mainUp)))
		rw.CORS = &model.CORS{AllowOrigins: []string{"https://*.a.example"}, AllowMethods: "GET", AllowHeaders: "X-A", MaxAge: 1}
		rw.Canary = &model.Canary{Backend: backend("default/canary:80", addr(canUp)), Header: "X-Canary", Weight: 50, WeightTotal: 100}
		return &model.Snapshot{Hosts: []*model.VirtualHost{{Name: "x.test", Routes: []*model.Route{rw}}}}
	}
	g := newGateway(t, Options{})
	g.load(t, mk())
	done := make(chan struct{})
	go func() { // table swaps during the requests
		defer close(done)
		for range 20 {
			snap := mk()
			tbl, err := route.Compile(snap, g.pools.Sync(snap))
			if err != nil {
				t.Error(err) // not Fatal: this is not the test's goroutine
				return
			}
			g.h.Swap(tbl)
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 40 {
				req, _ := http.NewRequest("GET", g.srv.URL+fmt.Sprintf("/rw/%d/%d", i, j), nil)
				req.Host = "x.test"
				origin := fmt.Sprintf("https://o%d.a.example", i)
				req.Header.Set("Origin", origin)
				want := "main"
				if j%2 == 0 {
					req.Header.Set("X-Canary", "always")
					want = "canary"
				} else {
					req.Header.Set("X-Canary", "never")
				}
				resp, err := g.srv.Client().Do(req)
				if err != nil {
					errs <- err.Error()
					return
				}
				var s seen
				err = json.NewDecoder(resp.Body).Decode(&s)
				resp.Body.Close()
				if err != nil || s.Name != want || s.Path != fmt.Sprintf("/x/%d/%d", i, j) || resp.Header.Get("Access-Control-Allow-Origin") != origin {
					errs <- fmt.Sprintf("request %d/%d: %v %+v %v", i, j, err, s, resp.Header)
					return
				}
			}
		}()
	}
	wg.Wait()
	<-done
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestLocalAnswersAfterAdmit: the route's source ranges apply before the
// gateway answers a redirect or a preflight itself.
func TestLocalAnswersAfterAdmit(t *testing.T) {
	b := backend("default/a:80", addr(echoBackend(t, "a")))
	deny := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	redir := prefix("/r", b)
	redir.Redirect = &model.Redirect{URL: "https://x.example/", Code: 301}
	redir.Traffic = &model.Traffic{DenySources: deny}
	cors := prefix("/c", b)
	cors.CORS = &model.CORS{AllowOrigins: []string{"*"}, AllowMethods: "GET", AllowHeaders: "X-A"}
	cors.Traffic = &model.Traffic{DenySources: deny}
	g := newGateway(t, Options{})
	g.load(t, &model.Snapshot{Hosts: []*model.VirtualHost{{Name: "x.test", Routes: []*model.Route{redir, cors}}}})
	if r := g.get(t, "x.test", "/r"); r.code != 403 || r.hdr.Get("Location") != "" {
		t.Errorf("redirect from a denied client: %d %v", r.code, r.hdr)
	}
	req, err := http.NewRequest("OPTIONS", g.srv.URL+"/c", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "x.test"
	req.Header.Set("Origin", "https://a.example")
	if r := do(t, g.srv.Client(), req); r.code != 403 {
		t.Errorf("preflight from a denied client: %d %v", r.code, r.hdr)
	}
}

// TestRewriteGroupsStayInPlace: a group substituted into the rewrite
// target's path never starts a query ("%3F" in the request path), and a
// group substituted into its query is escaped, as nginx escapes captures
// in arguments: the client cannot add arguments or break the request line.
func TestRewriteGroupsStayInPlace(t *testing.T) {
	be := echoBackend(t, "a")
	b := backend("default/a:80", addr(be))
	snap := &model.Snapshot{Hosts: []*model.VirtualHost{{Name: "x.test", Routes: []*model.Route{
		regexRoute("/p/(.*)", "/new/$1", b),
		regexRoute("/q/(.*)", "/search?term=$1", b),
	}}}}
	g := newGateway(t, Options{})
	g.load(t, snap)
	for _, tc := range []struct{ target, path, query string }{
		{"/p/a%3Fadmin=1", "/new/a?admin=1", ""},
		{"/p/a%3Fadmin=1?x=2", "/new/a?admin=1", "x=2"},
		{"/q/a&admin=1", "/search", "term=a%26admin%3D1"},
		{"/q/a%20b", "/search", "term=a+b"},
		{"/q/a%23b?page=2", "/search", "term=a%23b&page=2"},
	} {
		r := g.get(t, "x.test", tc.target)
		if r.code != 200 || r.seen.Path != tc.path || r.seen.Query != tc.query {
			t.Errorf("GET %s: %d, upstream saw path %q query %q; want %q %q", tc.target, r.code, r.seen.Path, r.seen.Query, tc.path, tc.query)
		}
	}
}

// TestCORSVaryOnEveryAnswer: on a route whose Access-Control-Allow-Origin
// depends on the Origin, every response says "Vary: Origin", those without
// CORS headers too (no Origin, a disallowed one): otherwise a cache keeps
// the answer without CORS headers and serves it to an allowed origin.
func TestCORSVaryOnEveryAnswer(t *testing.T) {
	up := echoBackend(t, "a")
	b := backend("default/a:80", addr(up))
	list := prefix("/list", b)
	list.CORS = &model.CORS{AllowOrigins: []string{"https://app.example"}, AllowMethods: "GET", AllowHeaders: "DNT", MaxAge: -1}
	g := newGateway(t, Options{})
	g.load(t, &model.Snapshot{Hosts: []*model.VirtualHost{{Name: "x.test", Routes: []*model.Route{list}}}})
	for _, origin := range []string{"", "https://evil.example", "https://app.example"} {
		var hdr []string
		if origin != "" {
			hdr = []string{"Origin", origin}
		}
		r := g.get(t, "x.test", "/list", hdr...)
		if r.code != 200 || !hasToken(r.hdr.Values("Vary"), "Origin") || len(r.hdr.Values("Vary")) != 1 {
			t.Errorf("GET with Origin %q: %d, Vary %q; want Origin once", origin, r.code, r.hdr.Values("Vary"))
		}
	}
}

// FuzzRewritePath: whatever the request path, the groups substituted into
// a rewrite target never change the query: a target without "?" keeps the
// request's own query, and one with "?" adds exactly its own arguments.
func FuzzRewritePath(f *testing.F) {
	f.Add("/p/a?admin=1&x", "q=1")
	f.Add("/p/a%3F#b c", "")
	f.Add("/p/", "a&b")
	re := regexp.MustCompile("(?i)^/p/(.*)")
	f.Fuzz(func(t *testing.T, path, query string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.URL.RawQuery = query
		st := &reqState{res: route.Result{Path: path, Regexp: re}}
		if got := rewritePath(r, st, "/new/$1"); got.URL.RawQuery != query {
			t.Fatalf("path %q query %q: target without \"?\" gave query %q", path, query, got.URL.RawQuery)
		}
		st = &reqState{res: route.Result{Path: path, Regexp: re}}
		got := rewritePath(r, st, "/s?term=$1")
		own, ok := got.URL.RawQuery, true
		if query != "" {
			own, ok = strings.CutSuffix(own, "&"+query)
		}
		vals, err := url.ParseQuery(own)
		if !ok || err != nil || len(vals) != 1 || len(vals["term"]) != 1 {
			t.Fatalf("path %q: target with \"?\" gave query %q (%v, %v)", path, got.URL.RawQuery, vals, err)
		}
		if m := re.FindStringSubmatch(path); m != nil && vals["term"][0] != m[1] {
			t.Fatalf("path %q: term %q, want the group %q", path, vals["term"][0], m[1])
		}
	})
}

// TestLocalAnswersOfBrokenRoute: a route whose policy is invalid
// (FilterError: a broken allowlist, rate limit or backend TLS setting)
// answers what its chain answers (503), never a redirect, app-root or
// preflight of its own: failing closed covers the gateway's own answers.
func TestLocalAnswersOfBrokenRoute(t *testing.T) {
	b := backend("default/a:80", addr(echoBackend(t, "a")))
	redir := prefix("/r", b)
	redir.Redirect = &model.Redirect{URL: "https://x.example/", Code: 301}
	root := prefix("/", b)
	root.AppRoot = "/app"
	cors := prefix("/c", b)
	cors.CORS = &model.CORS{AllowOrigins: []string{"*"}, AllowMethods: "GET", AllowHeaders: "X-A"}
	chains := map[*model.Route]http.Handler{}
	for _, r := range []*model.Route{redir, root, cors} {
		r.FilterError = `metadata.annotations["nginx.ingress.kubernetes.io/whitelist-source-range"]: "x" is not a CIDR prefix`
		chains[r] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			plainError(w, http.StatusServiceUnavailable, "the filter chain of this route is invalid")
		})
	}
	g := newGateway(t, Options{})
	snap := &model.Snapshot{Hosts: []*model.VirtualHost{{Name: "x.test", Routes: []*model.Route{redir, root, cors}}}}
	tbl, err := route.CompileWithChains(snap, g.pools.Sync(snap), chains)
	if err != nil {
		t.Fatal(err)
	}
	g.h.Swap(tbl)
	client := *g.srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, tc := range []struct{ method, path string }{{"GET", "/r"}, {"GET", "/"}, {"OPTIONS", "/c"}} {
		req, err := http.NewRequest(tc.method, g.srv.URL+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "x.test"
		req.Header.Set("Origin", "https://a.example")
		if r := do(t, &client, req); r.code != 503 || r.hdr.Get("Location") != "" || r.hdr.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("%s %s on a broken route: %d %v, want 503 from its chain", tc.method, tc.path, r.code, r.hdr)
		}
	}
}

// TestAppRootBehindTrustedProxy: the app-root redirect keeps the scheme
// the client used: X-Forwarded-Proto from a trusted proxy (one that
// terminates TLS), the connection's own scheme otherwise.
func TestAppRootBehindTrustedProxy(t *testing.T) {
	b := backend("default/a:80", addr(echoBackend(t, "a")))
	root := prefix("/", b)
	root.AppRoot = "/app"
	snap := &model.Snapshot{Hosts: []*model.VirtualHost{{Name: "x.test", Routes: []*model.Route{root}}}}
	for _, tc := range []struct {
		trusted, proto, want string
	}{
		{"", "https", "http://x.test/app"}, // an untrusted peer's header is ignored
		{"127.0.0.0/8", "https", "https://x.test/app"},
		{"127.0.0.0/8", "", "http://x.test/app"},
		{"127.0.0.0/8", "gopher", "http://x.test/app"},
	} {
		var opts Options
		if tc.trusted != "" {
			opts.TrustedProxies = []netip.Prefix{netip.MustParsePrefix(tc.trusted)}
		}
		g := newGateway(t, opts)
		g.load(t, snap)
		req, err := http.NewRequest("GET", g.srv.URL+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "x.test"
		if tc.proto != "" {
			req.Header.Set("X-Forwarded-Proto", tc.proto)
		}
		client := *g.srv.Client()
		client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		if r := do(t, &client, req); r.code != 302 || r.hdr.Get("Location") != tc.want {
			t.Errorf("trusted %q, X-Forwarded-Proto %q: %d Location %q, want 302 %q", tc.trusted, tc.proto, r.code, r.hdr.Get("Location"), tc.want)
		}
	}
}
