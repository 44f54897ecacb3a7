// Package route compiles a model.Snapshot into an immutable matching table
// and matches requests against it, following the Ingress spec: exact hosts,
// then "*.domain" wildcards of exactly one label, then the rules without a
// host; Exact and Prefix paths, longest match first, Exact before Prefix on
// a tie. Regex paths (ingress-nginx use-regex) compete with Prefix paths by
// the length of the path as written, as ingress-nginx orders its locations
// (regex.go).
//
// # Notes
//
//   - A Table is never modified after Compile; Match is safe for concurrent
//     use, takes no locks and does not allocate for clean paths on hosts
//     without regex routes.
//   - Paths are matched after normalization (see CleanPath) and the proxy
//     forwards that same normalized path, so "/public/../admin" is routed,
//     and delivered, as "/admin".
//   - See https://kubernetes.io/docs/concepts/services-networking/ingress/#examples
package route

import (
	"bytes"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/core/internal/upstream"
)

// Table is a compiled, immutable route table.
type Table struct {
	exact map[string]*vhost // by lowercase host
	wild  map[string]*vhost // by the domain after "*."
	any   *vhost            // rules without a host; nil if none
	def   target            // DefaultBackend; Backend nil means 404
	snap  *model.Snapshot
}

type vhost struct {
	name   string
	exact  map[string]target // by full path
	prefix map[string]target // by path without trailing slash; "/" is ""
	regex  []target          // PathRegex routes, longest Path first (regex.go)
}

type target struct {
	chain   http.Handler // the route's filter chain; nil for none
	route   *model.Route
	backend *model.Backend
	pool    *upstream.Pool
	re      *regexp.Regexp // PathRegex routes only
	lit     string         // PathRegex: a prefix every match starts with (regex.go)
	canary  *Canary        // nil when the route has none
}

// Result is the outcome of Match. A zero Backend means no rule and no
// default backend matched: answer 404.
type Result struct {
	// Route is the rule that matched, nil when the default backend answers
	// or nothing matched.
	Route *model.Route
	// Host is the VirtualHost name that matched ("*.foo.com", "" for the
	// host-less rules); meaningful only when Route is non-nil.
	Host    string
	Backend *model.Backend
	Pool    *upstream.Pool
	// Path is the normalized request path that was matched; the proxy
	// forwards it upstream.
	Path string
	// Chain is the route's filter chain, nil when it has none. It ends in
	// the proxy's forwarding handler.
	Chain http.Handler
	// Regexp is the compiled path of a PathRegex route (its groups feed
	// Route.Rewrite), nil for other routes.
	Regexp *regexp.Regexp
	// Canary is the route's alternative backend, nil when it has none;
	// Canary.Selected decides per request.
	Canary *Canary
}

// Compile builds a Table from snap. pools maps every backend name used in
// snap to its pool (upstream.Set.Sync returns exactly that). Compile does
// not modify snap; the Table keeps pointers into it.
//
// Compile rejects what translate must never produce: duplicate or invalid
// host names, nil routes or backends, paths that do not start with "/" or
// Exact paths that are not normalized (they could never match), unknown
// path types, and backends without a pool. For two routes with the same
// path and type in one host, the first (in Routes order) wins.
func Compile(snap *model.Snapshot, pools map[string]*upstream.Pool) (*Table, error) {
	return CompileWithChains(snap, pools, nil)
}

// CompileWithChains is Compile, and attaches to each route the handler
// that chains[route] names (its filter chain, which ends in the proxy): Match
// returns it as Result.Chain. Routes without an entry have no chain.
func CompileWithChains(snap *model.Snapshot, pools map[string]*upstream.Pool, chains map[*model.Route]http.Handler) (*Table, error) {
	if snap == nil {
		return nil, fmt.Errorf("compile route table: nil snapshot")
	}
	t := &Table{
		exact: make(map[string]*vhost),
		wild:  make(map[string]*vhost),
		snap:  snap,
	}
	resolve := func(b *model.Backend) (target, error) {
		p := pools[b.Name]
		if p == nil {
			return target{}, fmt.Errorf("backend %q: no upstream pool", b.Name)
		}
		return target{backend: b, pool: p}, nil
	}
	if snap.DefaultBackend != nil {
		tg, err := resolve(snap.DefaultBackend)
		if err != nil {
			return nil, fmt.Errorf("compile route table: default backend: %w", err)
		}
		t.def = tg
	}
	for i, vh := range snap.Hosts {
		if vh == nil {
			return nil, fmt.Errorf("compile route table: hosts[%d]: nil virtual host", i)
		}
		v, err := compileHost(vh, resolve, chains)
		if err != nil {
			return nil, fmt.Errorf("compile route table: host %q: %w", vh.Name, err)
		}
		name := strings.ToLower(vh.Name)
		var m map[string]*vhost
		switch {
		case name == "":
			if t.any != nil {
				return nil, fmt.Errorf("compile route table: host %q: duplicate virtual host", vh.Name)
			}
			t.any = v
			continue
		case strings.HasPrefix(name, "*."):
			m, name = t.wild, name[2:]
		default:
			m = t.exact
		}
		if err := checkHostName(name); err != nil {
			return nil, fmt.Errorf("compile route table: host %q: %w", vh.Name, err)
		}
		if _, dup := m[name]; dup {
			return nil, fmt.Errorf("compile route table: host %q: duplicate virtual host", vh.Name)
		}
		m[name] = v
	}
	return t, nil
}

func compileHost(vh *model.VirtualHost, resolve func(*model.Backend) (target, error), chains map[*model.Route]http.Handler) (*vhost, error) {
	v := &vhost{
		name:   vh.Name,
		exact:  make(map[string]target),
		prefix: make(map[string]target),
	}
	for i, r := range vh.Routes {
		if r == nil {
			return nil, fmt.Errorf("routes[%d]: nil route", i)
		}
		if r.Backend == nil {
			return nil, fmt.Errorf("routes[%d] %s %q (%s): nil backend", i, r.PathType, r.Path, r.Source)
		}
		if !strings.HasPrefix(r.Path, "/") {
			return nil, fmt.Errorf("routes[%d] %s %q (%s): path must start with \"/\"", i, r.PathType, r.Path, r.Source)
		}
		tg, err := resolve(r.Backend)
		if err != nil {
			return nil, fmt.Errorf("routes[%d] %s %q (%s): %w", i, r.PathType, r.Path, r.Source, err)
		}
		tg.route = r
		tg.chain = chains[r]
		if r.Canary != nil {
			if tg.canary, err = compileCanary(r.Canary, resolve); err != nil {
				return nil, fmt.Errorf("routes[%d] %s %q (%s): canary: %w", i, r.PathType, r.Path, r.Source, err)
			}
		}
		var m map[string]target
		var key string
		switch r.PathType {
		case model.PathExact:
			if CleanPath(r.Path) != r.Path {
				return nil, fmt.Errorf("routes[%d] %s %q (%s): path is not normalized (want %q)", i, r.PathType, r.Path, r.Source, CleanPath(r.Path))
			}
			m, key = v.exact, r.Path
		case model.PathPrefix:
			key = strings.TrimRight(CleanPath(r.Path), "/")
			m = v.prefix
		case model.PathRegex:
			if tg.re, err = CompileRegexPath(r.Path); err != nil {
				return nil, fmt.Errorf("routes[%d] %s %q (%s): %w", i, r.PathType, r.Path, r.Source, err)
			}
			tg.lit = literalPrefix(r.Path)
			v.addRegex(tg)
			continue
		default:
			return nil, fmt.Errorf("routes[%d] %q (%s): unknown path type %q", i, r.Path, r.Source, r.PathType)
		}
		if _, dup := m[key]; !dup {
			m[key] = tg
		}
	}
	return v, nil
}

// checkHostName accepts lowercase DNS names (without a trailing dot) made
// of labels of letters, digits, '-' and '_', no "*".
func checkHostName(name string) error {
	if name == "" || len(name) > 253 {
		return fmt.Errorf("invalid host name length %d", len(name))
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("empty or too long label")
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("invalid character %q", c)
			}
		}
	}
	return nil
}

// Snapshot returns the snapshot the table was compiled from.
func (t *Table) Snapshot() *model.Snapshot { return t.snap }

// Match finds the route for a request's Host header (port and trailing dot
// allowed, any case) and URL path (decoded, as in url.URL.Path). It never
// allocates when host is at most 255 bytes and path is already normalized.
//
// A host that selects a VirtualHost but matches none of its paths gets the
// default backend; there is no fallthrough to the wildcard or host-less
// rules.
func (t *Table) Match(host, path string) Result {
	path = CleanPath(path)

	// Lowercase into a stack buffer; map lookups keyed by string(b) do
	// not allocate.
	var buf [255]byte
	h := appendHost(buf[:0], host)

	v := t.exact[string(h)]
	if v == nil {
		if i := bytes.IndexByte(h, '.'); i > 0 {
			v = t.wild[string(h[i+1:])]
		}
	}
	if v == nil {
		v = t.any
	}
	if v != nil {
		if tg, ok := v.match(path); ok {
			return Result{Route: tg.route, Host: v.name, Backend: tg.backend, Pool: tg.pool, Path: path, Chain: tg.chain, Regexp: tg.re, Canary: tg.canary}
		}
	}
	return Result{Backend: t.def.backend, Pool: t.def.pool, Path: path}
}

// match finds the route of path in v: an Exact route, else the regex or
// Prefix route that matchRegex picks.
func (v *vhost) match(path string) (target, bool) {
	if tg, ok := v.exact[path]; ok {
		return tg, true
	}
	tg, ok := v.matchPrefix(path)
	if len(v.regex) > 0 {
		return v.matchRegex(path, tg, ok)
	}
	return tg, ok
}

// matchPrefix finds the longest Prefix route of path.
func (v *vhost) matchPrefix(path string) (target, bool) {
	if len(v.prefix) == 0 {
		return target{}, false
	}
	// Element prefixes of path, longest first: "/a/b/" -> "/a/b", "/a", "".
	p := strings.TrimRight(path, "/")
	for {
		if tg, ok := v.prefix[p]; ok {
			return tg, true
		}
		if p == "" {
			return target{}, false
		}
		p = p[:strings.LastIndexByte(p, '/')]
	}
}

// appendHost appends host to b lowercased, without a port or a trailing
// dot; an IPv6 literal "[::1]:80" becomes "::1".
func appendHost(b []byte, host string) []byte {
	if strings.HasPrefix(host, "[") {
		if i := strings.IndexByte(host, ']'); i > 0 {
			host = host[1:i]
		}
	} else if i := strings.IndexByte(host, ':'); i >= 0 && strings.IndexByte(host[i+1:], ':') < 0 {
		host = host[:i] // "name:port"; a bare IPv6 literal is left alone
	}
	host = strings.TrimSuffix(host, ".")
	for i := 0; i < len(host); i++ {
		c := host[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}
