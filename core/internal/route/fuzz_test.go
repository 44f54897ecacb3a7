package route

import (
	"path"
	"strings"
	"testing"

	"github.com/sluicegw/sluice/core/internal/model"
)

// refMatch is the naive reference matcher: a linear scan written straight
// from the Ingress spec, sharing only CleanPath with the real one.
func refMatch(snap *model.Snapshot, host, p string) (*model.Route, *model.Backend) {
	p = CleanPath(p)
	h := strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, host)
	if strings.HasPrefix(h, "[") {
		if i := strings.Index(h, "]"); i > 0 {
			h = h[1:i]
		}
	} else if strings.Count(h, ":") == 1 {
		h = h[:strings.Index(h, ":")]
	}
	h = strings.TrimSuffix(h, ".")

	var vh *model.VirtualHost
	for _, v := range snap.Hosts { // exact
		if v.Name != "" && !strings.HasPrefix(v.Name, "*.") && strings.ToLower(v.Name) == h {
			vh = v
		}
	}
	if vh == nil { // wildcard of one label
		for _, v := range snap.Hosts {
			if domain, ok := strings.CutPrefix(strings.ToLower(v.Name), "*."); ok {
				label, found := strings.CutSuffix(h, "."+domain)
				if found && label != "" && !strings.Contains(label, ".") {
					vh = v
				}
			}
		}
	}
	if vh == nil {
		for _, v := range snap.Hosts {
			if v.Name == "" {
				vh = v
			}
		}
	}
	if vh == nil {
		return nil, snap.DefaultBackend
	}
	var best *model.Route
	bestLen := -1
	for _, r := range vh.Routes {
		n := -1
		switch r.PathType {
		case model.PathExact:
			if p == r.Path {
				n = len(r.Path)
			}
		case model.PathPrefix:
			pre := strings.TrimRight(r.Path, "/")
			if p == pre || strings.HasPrefix(p, pre+"/") {
				n = len(pre)
			}
		}
		if n < 0 {
			continue
		}
		if n > bestLen || n == bestLen && r.PathType == model.PathExact && best.PathType != model.PathExact {
			best, bestLen = r, n
		}
	}
	if best == nil {
		return nil, snap.DefaultBackend
	}
	return best, best.Backend
}

func fuzzSnapshot() *model.Snapshot {
	return &model.Snapshot{
		Hosts: []*model.VirtualHost{
			host("", "Prefix /", "Exact /x"),
			host("*.a.com", "Prefix /p", "Exact /p", "Prefix /p/q/"),
			host("b.a.com", "Exact /", "Prefix /b"),
			host("a.com", "Prefix /a/b", "Prefix /a", "Exact /a/b/c"),
			host("*.com", "Prefix /com"),
		},
		DefaultBackend: defaultBackend,
	}
}

func FuzzMatch(f *testing.F) {
	snap := fuzzSnapshot()
	tbl := compile(f, snap)
	for _, s := range [][2]string{
		{"a.com", "/a/b/c"}, {"x.a.com:80", "/p/q"}, {"B.A.COM.", "/b/"}, {"[::1]:1", "/x"},
		{"x.y.a.com", "/p"}, {"", "//a/../p/./q"}, {"a.com", "/a/b/c/"}, {"com", "/"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, h, p string) {
		c := CleanPath(p)
		if !isClean(c) || CleanPath(c) != c {
			t.Fatalf("CleanPath(%q) = %q is not a fixed point", p, c)
		}
		if path.Clean(c) != path.Clean("/"+p) {
			t.Fatalf("CleanPath(%q) = %q disagrees with path.Clean %q", p, c, path.Clean("/"+p))
		}
		last := p[strings.LastIndexByte(p, '/')+1:]
		if wantSlash := c == "/" || last == "" || last == "." || last == ".."; strings.HasSuffix(c, "/") != wantSlash {
			t.Fatalf("CleanPath(%q) = %q: trailing slash should be %v", p, c, wantSlash)
		}
		got := tbl.Match(h, p)
		wantRoute, wantBackend := refMatch(snap, h, p)
		if got.Route != wantRoute || got.Backend != wantBackend {
			t.Fatalf("Match(%q, %q) = %v/%v, reference says %v/%v", h, p, got.Route, got.Backend, wantRoute, wantBackend)
		}
		if got.Path != c {
			t.Fatalf("Match(%q, %q).Path = %q, want %q", h, p, got.Path, c)
		}
	})
}
