package route

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/core/internal/upstream"
)

// TestMatchRegex: regex routes match case-insensitively from the start of
// the path, after Exact routes, and compete with Prefix routes by the
// length of the path as written (ingress-nginx's location order).
func TestMatchRegex(t *testing.T) {
	tbl := compile(t, &model.Snapshot{
		Hosts: []*model.VirtualHost{
			host("a.test", "Exact /x", "Prefix /api", "Prefix /", "Regex /api/v[0-9]+/(.*)", `Regex /.*\.png`, "Regex /a", "Regex /a"),
			host("only.test", "Regex /re(/|$)(.*)"),
		},
		DefaultBackend: defaultBackend,
	})
	for _, tc := range []struct{ host, path, want string }{
		{"a.test", "/x", "Exact /x"},
		{"a.test", "/api/v2/users", "Regex /api/v[0-9]+/(.*)"},
		{"a.test", "/API/V2/Users", "Regex /api/v[0-9]+/(.*)"},
		{"a.test", "/api/vx", "Prefix /api"},       // the png regex (8 bytes) fails; "/a" is shorter than "/api"
		{"a.test", "/api/x.png", `Regex /.*\.png`}, // 8 bytes beat "/api"
		{"a.test", "/img/a.PNG", `Regex /.*\.png`},
		{"a.test", "/ab", "Regex /a"}, // "/a" (2) beats "/" (1)
		{"a.test", "/b", "Prefix /"},
		{"a.test", "/z/api/v1/x", "Prefix /"}, // anchored at the start
		{"a.test", "/x/", "Prefix /"},
		{"only.test", "/re", "Regex /re(/|$)(.*)"},
		{"only.test", "/re/x/y", "Regex /re(/|$)(.*)"},
		{"only.test", "/other", "default"},
	} {
		if g := got(tbl.Match(tc.host, tc.path)); g != tc.want {
			t.Errorf("Match(%q, %q) = %s, want %s", tc.host, tc.path, g, tc.want)
		}
	}

	r := tbl.Match("only.test", "/re//x/./y")
	if r.Regexp == nil || r.Path != "/re/x/y" {
		t.Fatalf("regex result: %+v", r)
	}
	if m := r.Regexp.FindStringSubmatch(r.Path); len(m) != 3 || m[1] != "/" || m[2] != "x/y" {
		t.Fatalf("groups of %q: %q", r.Path, m)
	}
	if r := tbl.Match("a.test", "/b"); r.Regexp != nil {
		t.Fatalf("a Prefix result carries a regex: %v", r.Regexp)
	}
}

func TestCompileRegexPath(t *testing.T) {
	for path, want := range map[string]string{
		"/ok/(.*)":                      "",
		"relative":                      `must start with "/"`,
		"/(":                            "not an RE2 regular expression",
		"/(?=lookahead)":                "not an RE2 regular expression",
		"/" + strings.Repeat("a", 1024): "more than 1024",
	} {
		_, err := CompileRegexPath(path)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("CompileRegexPath(%.20q) = %v, want an error with %q", path, err, want)
		}
	}
}

// TestCanarySelected: header first (always/never, or its value or
// pattern), then the cookie, then the weight.
func TestCanarySelected(t *testing.T) {
	be := &model.Backend{Name: "c"}
	resolve := func(*model.Backend) (target, error) { return target{}, nil }
	mk := func(c model.Canary) *Canary {
		c.Backend = be
		if c.WeightTotal == 0 {
			c.WeightTotal = 100
		}
		cc, err := compileCanary(&c, resolve)
		if err != nil {
			t.Fatal(err)
		}
		return cc
	}
	req := func(hdr ...string) *http.Request {
		r, _ := http.NewRequest("GET", "http://x/", nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Add(hdr[i], hdr[i+1])
		}
		return r
	}
	never := func(int) int { t.Helper(); t.Fatal("weight drawn"); return 0 }
	low := func(int) int { return 0 }        // draws the canary when weight > 0
	high := func(n int) int { return n - 1 } // draws the canary only when weight == total
	all := mk(model.Canary{Header: "x-canary", Cookie: "c", Weight: 10})
	for _, tc := range []struct {
		name string
		c    *Canary
		r    *http.Request
		intn func(int) int
		want bool
	}{
		{"header always", all, req("X-Canary", "always"), never, true},
		{"header never beats cookie", all, req("X-Canary", "never", "Cookie", "c=always"), never, false},
		{"other header value falls through to cookie", all, req("X-Canary", "maybe", "Cookie", "c=always"), never, true},
		{"cookie never", all, req("Cookie", "c=never"), never, false},
		{"other cookie value falls through to weight", all, req("Cookie", "c=x"), low, true},
		{"weight miss", all, req(), high, false},
		{"value", mk(model.Canary{Header: "X-Canary", HeaderValue: "v1"}), req("X-Canary", "v1"), never, true},
		{"value ignores always", mk(model.Canary{Header: "X-Canary", HeaderValue: "v1"}), req("X-Canary", "always"), high, false},
		{"pattern", mk(model.Canary{Header: "X-Canary", HeaderPattern: "^v[0-9]$"}), req("X-Canary", "v7"), never, true},
		{"pattern miss", mk(model.Canary{Header: "X-Canary", HeaderPattern: "^v[0-9]$"}), req("X-Canary", "v77"), high, false},
		{"weight zero never draws", mk(model.Canary{}), req(), never, false},
		{"weight total", mk(model.Canary{Weight: 7, WeightTotal: 7}), req(), high, true},
	} {
		if got := tc.c.selected(tc.r, tc.intn); got != tc.want {
			t.Errorf("%s: selected = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestCanaryWeight: over every draw of intn, exactly Weight of WeightTotal
// select the canary.
func TestCanaryWeight(t *testing.T) {
	c, err := compileCanary(&model.Canary{Backend: &model.Backend{Name: "c"}, Weight: 37, WeightTotal: 250},
		func(*model.Backend) (target, error) { return target{}, nil })
	if err != nil {
		t.Fatal(err)
	}
	r, _ := http.NewRequest("GET", "http://x/", nil)
	n := 0
	for i := range 250 {
		if c.selected(r, func(int) int { return i }) {
			n++
		}
	}
	if n != 37 {
		t.Fatalf("%d of 250 draws select the canary, want 37", n)
	}
}

// FuzzRegexPath compiles any path as a regex route beside two Prefix
// routes and checks Match against the ordering rule written out.
func FuzzRegexPath(f *testing.F) {
	for _, s := range [][2]string{
		{"/api/(.*)", "/api/x"}, {"/(", "/"}, {"/a|/b", "/xb"}, {"/.*", "/api"}, {`/\d+$`, "/12"}, {"/API", "/api"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, p string) {
		re, err := CompileRegexPath(pattern)
		routes := []*model.Route{rt("Prefix /"), rt("Prefix /api")}
		if err == nil {
			routes = append(routes, rt("Regex "+pattern))
		}
		snap := &model.Snapshot{Hosts: []*model.VirtualHost{{Name: "h", Routes: routes}}}
		tbl, cerr := Compile(snap, upstream.NewSet(upstream.Options{}).Sync(snap))
		if cerr != nil {
			t.Fatalf("Compile with the accepted regex %q: %v", pattern, cerr)
		}
		c := CleanPath(p)
		want := routes[0]
		if c == "/api" || strings.HasPrefix(c, "/api/") {
			want = routes[1]
		}
		if err == nil && len(pattern) >= len(want.Path) && re.MatchString(c) {
			want = routes[2]
		}
		got := tbl.Match("h", p)
		if got.Route != want {
			t.Fatalf("Match(%q) with regex %q = %v, want %v", p, pattern, got.Route, want)
		}
		if (got.Regexp != nil) != (want.PathType == model.PathRegex) {
			t.Fatalf("Match(%q) with regex %q: Regexp %v for a %s route", p, pattern, got.Regexp, want.PathType)
		}
	})
}

// BenchmarkMatchRegex: a host with 100 regex routes and a Prefix "/"; the
// request matches the first regex tried, the last one, or none (the
// Prefix route answers). "nolit" has the same routes written so that they
// have no literal prefix beyond "/" ("/(app…)"): every regex runs.
func BenchmarkMatchRegex(b *testing.B) {
	table := func(format string) *Table {
		vh := &model.VirtualHost{Name: "re.example.com"}
		be := &model.Backend{Name: "b", Endpoints: []string{"127.0.0.1:1"}}
		for i := range 100 {
			vh.Routes = append(vh.Routes, &model.Route{PathType: model.PathRegex, Path: fmt.Sprintf(format, i), Backend: be})
		}
		vh.Routes = append(vh.Routes, &model.Route{PathType: model.PathPrefix, Path: "/", Backend: be})
		return compile(b, &model.Snapshot{Hosts: []*model.VirtualHost{vh}})
	}
	for _, tb := range []struct {
		name string
		tbl  *Table
	}{
		{"100regex", table("/app%03d/(v[0-9]+)/(.*)")},
		{"100regex-nolit", table("/(app%03d)/(v[0-9]+)/(.*)")},
	} {
		for _, c := range []struct{ name, path string }{
			{"first", "/app000/v1/items/7"},
			{"last", "/app099/v1/items/7"},
			{"miss", "/static/app.js"},
		} {
			b.Run(tb.name+"/"+c.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if r := tb.tbl.Match("re.example.com", c.path); r.Backend == nil {
						b.Fatal("no match")
					}
				}
			})
		}
	}
}

func TestLiteralPrefix(t *testing.T) {
	for path, want := range map[string]string{
		"/svc/v1/(.*)":  "/",
		"/api/v1/(.*)":  "/api/v1/",
		"/api/a|/api/b": "",
		"/api":          "/api",
		"/a|/b":         "",
		"/x(/|$)(.*)":   "/x",
		"/desk/(.*)":    "/de",
		"/caf\u00e9/":   "/caf",
		"/[a-z]+":       "/",
		"/[a]pp":        "/app",
		"/(app)":        "/",
		"[":             "",
	} {
		if got := literalPrefix(path); got != want {
			t.Errorf("literalPrefix(%q) = %q, want %q", path, got, want)
		}
	}
	for _, tc := range []struct {
		s, p string
		want bool
	}{{"/API/x", "/api", true}, {"/ap", "/api", false}, {"/a[i", "/a{i", false}, {"/a@", "/a`", false}} {
		if got := hasPrefixFold(tc.s, tc.p); got != tc.want {
			t.Errorf("hasPrefixFold(%q, %q) = %v", tc.s, tc.p, got)
		}
	}
}
