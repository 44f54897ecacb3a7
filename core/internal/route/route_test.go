package route

import (
	"strings"
	"testing"

	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/core/internal/upstream"
)

// rt is a route written as "Prefix /foo" or "Exact /foo"; its backend is
// named after it so tests can tell which route matched.
func rt(s string) *model.Route {
	typ, path, _ := strings.Cut(s, " ")
	return &model.Route{
		PathType: model.PathType(typ),
		Path:     path,
		Backend:  &model.Backend{Name: s, Endpoints: []string{"127.0.0.1:1"}},
		Source:   model.ObjectRef{Kind: "Ingress", Namespace: "default", Name: "web"},
	}
}

func host(name string, routes ...string) *model.VirtualHost {
	vh := &model.VirtualHost{Name: name}
	for _, r := range routes {
		vh.Routes = append(vh.Routes, rt(r))
	}
	return vh
}

var defaultBackend = &model.Backend{Name: "default", Endpoints: []string{"127.0.0.1:2"}}

func compile(t testing.TB, snap *model.Snapshot) *Table {
	t.Helper()
	tbl, err := Compile(snap, upstream.NewSet(upstream.Options{}).Sync(snap))
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return tbl
}

// got names the outcome of a match: the route ("Prefix /foo"), "default"
// or "404".
func got(r Result) string {
	switch {
	case r.Route != nil:
		if r.Pool == nil || r.Pool.Name() != r.Route.Backend.Name || r.Backend != r.Route.Backend {
			return "inconsistent result"
		}
		return string(r.Route.PathType) + " " + r.Route.Path
	case r.Backend != nil:
		return r.Backend.Name
	default:
		return "404"
	}
}

// TestMatchIngressExamples has every row of the path matching table of
// https://kubernetes.io/docs/concepts/services-networking/ingress/#examples
func TestMatchIngressExamples(t *testing.T) {
	tests := []struct {
		routes []string
		paths  []string
		want   string // the route, or "default"
	}{
		{[]string{"Prefix /"}, []string{"/", "/foo", "/foo/bar", "/a/b/c/", "/Foo"}, "Prefix /"},
		{[]string{"Exact /foo"}, []string{"/foo"}, "Exact /foo"},
		{[]string{"Exact /foo"}, []string{"/bar"}, "default"},
		{[]string{"Exact /foo"}, []string{"/foo/"}, "default"},
		{[]string{"Exact /foo/"}, []string{"/foo"}, "default"},
		{[]string{"Prefix /foo"}, []string{"/foo", "/foo/"}, "Prefix /foo"},
		{[]string{"Prefix /foo/"}, []string{"/foo", "/foo/"}, "Prefix /foo/"},
		{[]string{"Prefix /aaa/bb"}, []string{"/aaa/bbb"}, "default"},
		{[]string{"Prefix /aaa/bbb"}, []string{"/aaa/bbb"}, "Prefix /aaa/bbb"},
		{[]string{"Prefix /aaa/bbb/"}, []string{"/aaa/bbb"}, "Prefix /aaa/bbb/"},
		{[]string{"Prefix /aaa/bbb"}, []string{"/aaa/bbb/"}, "Prefix /aaa/bbb"},
		{[]string{"Prefix /aaa/bbb"}, []string{"/aaa/bbb/ccc"}, "Prefix /aaa/bbb"},
		{[]string{"Prefix /aaa/bbb"}, []string{"/aaa/bbbxyz"}, "default"},
		{[]string{"Prefix /", "Prefix /aaa"}, []string{"/aaa/ccc"}, "Prefix /aaa"},
		{[]string{"Prefix /", "Prefix /aaa", "Prefix /aaa/bbb"}, []string{"/aaa/bbb"}, "Prefix /aaa/bbb"},
		{[]string{"Prefix /", "Prefix /aaa", "Prefix /aaa/bbb"}, []string{"/ccc"}, "Prefix /"},
		{[]string{"Prefix /aaa"}, []string{"/ccc"}, "default"},
		{[]string{"Prefix /foo", "Exact /foo"}, []string{"/foo"}, "Exact /foo"},
		{[]string{"Exact /foo", "Prefix /foo"}, []string{"/foo"}, "Exact /foo"},
		// Beyond the docs table.
		{[]string{"Exact /foo", "Prefix /foo"}, []string{"/foo/", "/foo/x"}, "Prefix /foo"},
		{[]string{"Exact /Foo"}, []string{"/foo"}, "default"},
		{[]string{"Prefix /Foo"}, []string{"/foo"}, "default"},
		{[]string{"Prefix /a", "Exact /a/b/c"}, []string{"/a/b/c"}, "Exact /a/b/c"},
		{[]string{"Prefix /a/b", "Exact /a"}, []string{"/a/b/c"}, "Prefix /a/b"},
		{[]string{"Prefix /admin", "Prefix /"}, []string{"/public/../admin", "//admin", "/./admin/", "/admin/./x"}, "Prefix /admin"},
		{[]string{"Prefix /admin", "Prefix /public"}, []string{"/public/../../admin"}, "Prefix /admin"},
		{[]string{"Exact /"}, []string{"", "/.", "/a/.."}, "Exact /"},
	}
	for _, tc := range tests {
		snap := &model.Snapshot{Hosts: []*model.VirtualHost{host("foo.com", tc.routes...)}, DefaultBackend: defaultBackend}
		tbl := compile(t, snap)
		for _, p := range tc.paths {
			if g := got(tbl.Match("foo.com", p)); g != tc.want {
				t.Errorf("routes %q, path %q: got %s, want %s", tc.routes, p, g, tc.want)
			}
		}
	}
}

func TestMatchHosts(t *testing.T) {
	snap := &model.Snapshot{
		Hosts: []*model.VirtualHost{
			host("", "Prefix /any"),
			host("*.foo.com", "Prefix /wild"),
			host("exact.foo.com", "Prefix /exact"),
			host("foo.com", "Prefix /apex"),
			host("Upper.Example.COM", "Prefix /upper"),
		},
		DefaultBackend: defaultBackend,
	}
	tbl := compile(t, snap)
	tests := []struct {
		host, path, want string
	}{
		// The wildcard table of the Ingress docs.
		{"bar.foo.com", "/wild", "Prefix /wild"},
		{"baz.bar.foo.com", "/any", "Prefix /any"},
		{"foo.com", "/apex", "Prefix /apex"},
		// Exact hosts win over wildcards.
		{"exact.foo.com", "/exact", "Prefix /exact"},
		{"exact.foo.com", "/wild", "default"}, // no fallthrough to *.foo.com
		{"bar.foo.com", "/any", "default"},    // no fallthrough to ""
		{".foo.com", "/any", "Prefix /any"},   // empty first label is no wildcard match
		// Ports, case, trailing dots.
		{"bar.foo.com:8443", "/wild", "Prefix /wild"},
		{"BAR.Foo.Com", "/wild", "Prefix /wild"},
		{"Bar.FOO.com.:80", "/wild", "Prefix /wild"},
		{"foo.com.", "/apex", "Prefix /apex"},
		{"upper.example.com", "/upper", "Prefix /upper"},
		{"UPPER.EXAMPLE.COM:1", "/upper", "Prefix /upper"},
		// IP literals and empty hosts go to the host-less rules.
		{"127.0.0.1:8080", "/any", "Prefix /any"},
		{"[::1]:8080", "/any", "Prefix /any"},
		{"[::1]", "/any", "Prefix /any"},
		{"::1", "/any", "Prefix /any"},
		{"[fe80::1%25eth0]:1", "/any", "Prefix /any"},
		{"", "/any", "Prefix /any"},
		{"", "/nothing", "default"},
		{":80", "/any", "Prefix /any"},
		{"other.org", "/any/x", "Prefix /any"},
		{strings.Repeat("a", 300) + ".foo.com", "/wild", "Prefix /wild"},
	}
	for _, tc := range tests {
		if g := got(tbl.Match(tc.host, tc.path)); g != tc.want {
			t.Errorf("Match(%q, %q) = %s, want %s", tc.host, tc.path, g, tc.want)
		}
	}
}

func TestMatchNoDefaultBackend(t *testing.T) {
	tbl := compile(t, &model.Snapshot{Hosts: []*model.VirtualHost{host("foo.com", "Exact /foo")}})
	for _, tc := range []struct{ host, path, want string }{
		{"foo.com", "/foo", "Exact /foo"},
		{"foo.com", "/bar", "404"},
		{"bar.com", "/foo", "404"},
		{"", "/", "404"},
	} {
		if g := got(tbl.Match(tc.host, tc.path)); g != tc.want {
			t.Errorf("Match(%q, %q) = %s, want %s", tc.host, tc.path, g, tc.want)
		}
	}
	empty := compile(t, &model.Snapshot{DefaultBackend: defaultBackend})
	if g := got(empty.Match("x", "/")); g != "default" {
		t.Errorf("empty table with default backend: got %s", g)
	}
}

func TestMatchResultPathAndHost(t *testing.T) {
	tbl := compile(t, &model.Snapshot{Hosts: []*model.VirtualHost{host("*.foo.com", "Prefix /a")}})
	r := tbl.Match("x.foo.com", "/b/../a//c/")
	if r.Path != "/a/c/" || r.Host != "*.foo.com" {
		t.Errorf("got Path %q Host %q, want /a/c/ and *.foo.com", r.Path, r.Host)
	}
	r = tbl.Match("nope", "//x")
	if r.Path != "/x" || r.Backend != nil {
		t.Errorf("404 result: got Path %q Backend %v", r.Path, r.Backend)
	}
}

func TestCompileErrors(t *testing.T) {
	good := func() *model.Backend { return &model.Backend{Name: "b"} }
	tests := []struct {
		name string
		snap *model.Snapshot
		want string
	}{
		{"nil snapshot", nil, "nil snapshot"},
		{"nil host", &model.Snapshot{Hosts: []*model.VirtualHost{nil}}, "hosts[0]: nil virtual host"},
		{"bad host", &model.Snapshot{Hosts: []*model.VirtualHost{{Name: "a_b c"}}}, `host "a_b c": invalid character ' '`},
		{"double wildcard", &model.Snapshot{Hosts: []*model.VirtualHost{{Name: "*.*.foo"}}}, `host "*.*.foo": invalid character '*'`},
		{"bare wildcard", &model.Snapshot{Hosts: []*model.VirtualHost{{Name: "*."}}}, `host "*.": invalid host name length 0`},
		{"duplicate host", &model.Snapshot{Hosts: []*model.VirtualHost{{Name: "a"}, {Name: "A"}}}, `host "A": duplicate virtual host`},
		{"duplicate any", &model.Snapshot{Hosts: []*model.VirtualHost{{}, {}}}, `host "": duplicate virtual host`},
		{"nil route", &model.Snapshot{Hosts: []*model.VirtualHost{{Name: "a", Routes: []*model.Route{nil}}}}, `host "a": routes[0]: nil route`},
		{"nil backend", &model.Snapshot{Hosts: []*model.VirtualHost{{Name: "a", Routes: []*model.Route{{PathType: model.PathExact, Path: "/"}}}}}, `host "a": routes[0] Exact "/" ( ): nil backend`},
		{"relative path", &model.Snapshot{Hosts: []*model.VirtualHost{{Name: "a", Routes: []*model.Route{{PathType: model.PathPrefix, Path: "x", Backend: good()}}}}}, `path must start with "/"`},
		{"unclean exact", &model.Snapshot{Hosts: []*model.VirtualHost{{Name: "a", Routes: []*model.Route{{PathType: model.PathExact, Path: "/a//b", Backend: good()}}}}}, `path is not normalized (want "/a/b")`},
		{"unknown type", &model.Snapshot{Hosts: []*model.VirtualHost{{Name: "a", Routes: []*model.Route{{PathType: "Glob", Path: "/", Backend: good()}}}}}, `unknown path type "Glob"`},
		{"bad regex", &model.Snapshot{Hosts: []*model.VirtualHost{{Name: "a", Routes: []*model.Route{{PathType: model.PathRegex, Path: "/(", Backend: good()}}}}}, `regex path is not an RE2 regular expression`},
		{"canary bad weight", &model.Snapshot{Hosts: []*model.VirtualHost{{Name: "a", Routes: []*model.Route{{PathType: model.PathPrefix, Path: "/", Backend: good(), Canary: &model.Canary{Backend: good(), Weight: 5, WeightTotal: 4}}}}}}, `canary: weight 5 of 4 is out of range`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(tc.snap, upstream.NewSet(upstream.Options{}).Sync(tc.snap))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
	t.Run("missing pool", func(t *testing.T) {
		snap := &model.Snapshot{Hosts: []*model.VirtualHost{host("a", "Exact /x")}}
		_, err := Compile(snap, nil)
		want := `compile route table: host "a": routes[0] Exact "/x" (Ingress default/web): backend "Exact /x": no upstream pool`
		if err == nil || err.Error() != want {
			t.Fatalf("got %v, want %s", err, want)
		}
		_, err = Compile(&model.Snapshot{DefaultBackend: defaultBackend}, nil)
		if err == nil || err.Error() != `compile route table: default backend: backend "default": no upstream pool` {
			t.Fatalf("got %v", err)
		}
	})
}

func TestCompileFirstDuplicateWins(t *testing.T) {
	first, second := rt("Prefix /a"), rt("Prefix /a/")
	second.Backend = &model.Backend{Name: "second"}
	snap := &model.Snapshot{Hosts: []*model.VirtualHost{{Name: "h", Routes: []*model.Route{first, second}}}}
	tbl := compile(t, snap)
	if r := tbl.Match("h", "/a/x"); r.Route != first {
		t.Fatalf("got %v, want the first route", r.Route)
	}
}

func TestCleanPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "/"},
		{"/", "/"},
		{"*", "/*"},
		{"foo", "/foo"},
		{"/foo", "/foo"},
		{"/foo/", "/foo/"},
		{"//foo", "/foo"},
		{"/foo//bar", "/foo/bar"},
		{"/foo///", "/foo/"},
		{"/./foo", "/foo"},
		{"/foo/.", "/foo/"},
		{"/foo/..", "/"},
		{"/foo/bar/..", "/foo/"},
		{"/foo/bar/../", "/foo/"},
		{"/..", "/"},
		{"/../../a", "/a"},
		{"/public/../admin", "/admin"},
		{"/a/.../b", "/a/.../b"},
		{"/a/..b/.c", "/a/..b/.c"},
		{"/a/%2e%2e/b", "/a/%2e%2e/b"}, // already decoded by net/url; not a dot segment here
	}
	for _, tc := range tests {
		if g := CleanPath(tc.in); g != tc.want {
			t.Errorf("CleanPath(%q) = %q, want %q", tc.in, g, tc.want)
		}
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	tbl := compile(t, &model.Snapshot{
		Hosts:          []*model.VirtualHost{host("foo.com", "Prefix /a/b", "Exact /c"), host("*.bar.com", "Prefix /")},
		DefaultBackend: defaultBackend,
	})
	for _, tc := range []struct{ host, path string }{
		{"foo.com", "/a/b/c/d"},
		{"FOO.com:80", "/c"},
		{"x.BAR.com", "/z"},
		{"nope", "/z/y/x"},
	} {
		if n := testing.AllocsPerRun(100, func() { tbl.Match(tc.host, tc.path) }); n != 0 {
			t.Errorf("Match(%q, %q): %v allocs, want 0", tc.host, tc.path, n)
		}
	}
}
