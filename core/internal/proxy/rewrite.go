package proxy

import (
	"net/http"
	"regexp"
	"strings"
)

// rewritePath applies a route's rewrite target to r, as nginx's
// `rewrite REGEX TARGET break;` does: the whole path is replaced by target
// with "$1".."$9" replaced by the groups of the route's regex (empty when
// a group did not take part, or the route is not a regex route). A "?" in
// target starts a query that comes before the request's own arguments.
// The result goes upstream; r itself is not modified.
func rewritePath(r *http.Request, st *reqState, target string) *http.Request {
	path := expandTarget(target, st.res.Path, st.res.Regexp)
	query := r.URL.RawQuery
	if p, q, ok := strings.Cut(path, "?"); ok {
		path = p
		if query != "" && q != "" {
			q += "&"
		}
		query = q + query
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	st.res.Path = path
	if query == r.URL.RawQuery {
		return r
	}
	r2 := r.Clone(r.Context())
	r2.URL.RawQuery = query
	return r2
}

// expandTarget replaces each "$1".."$9" in target by that group of the
// leftmost match of re in s (a nil re has no groups). Any other "$" is
// kept as is.
func expandTarget(target, s string, re *regexp.Regexp) string {
	if !strings.Contains(target, "$") {
		return target
	}
	var m []int
	if re != nil {
		m = re.FindStringSubmatchIndex(s)
	}
	var b strings.Builder
	b.Grow(len(target) + len(s))
	for i := 0; i < len(target); i++ {
		c := target[i]
		if c != '$' || i+1 == len(target) || target[i+1] < '1' || target[i+1] > '9' {
			b.WriteByte(c)
			continue
		}
		i++
		g := int(target[i] - '0')
		if 2*g+1 < len(m) && m[2*g] >= 0 {
			b.WriteString(s[m[2*g]:m[2*g+1]])
		}
	}
	return b.String()
}
