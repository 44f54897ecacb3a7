package proxy

import (
	"net/http"
	"net/url"
	"strings"
)

// rewritePath applies a route's rewrite target to r, as nginx's
// `rewrite REGEX TARGET break;` does: the whole path is replaced by target
// with "$1".."$9" replaced by the groups of the route's regex (empty when
// a group did not take part, or the route is not a regex route). A "?" in
// target starts a query that comes before the request's own arguments;
// a "?" from a group does not (it stays in the path), and groups in the
// query are query-escaped, as nginx escapes captures in arguments.
// The result goes upstream; r itself is not modified.
func rewritePath(r *http.Request, st *reqState, target string) *http.Request {
	var m []int
	if re := st.res.Regexp; re != nil && strings.Contains(target, "$") {
		m = re.FindStringSubmatchIndex(st.res.Path)
	}
	tpath, tquery, hasQuery := strings.Cut(target, "?")
	path := expandTarget(tpath, st.res.Path, m, nil)
	query := r.URL.RawQuery
	if hasQuery {
		q := expandTarget(tquery, st.res.Path, m, url.QueryEscape)
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

// expandTarget replaces each "$1".."$9" in target by that group of s, m
// being the submatch indexes of a match in s (nil: no groups), passed
// through escape unless it is nil. Any other "$" is kept as is.
func expandTarget(target, s string, m []int, escape func(string) string) string {
	if !strings.Contains(target, "$") {
		return target
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
			if v := s[m[2*g]:m[2*g+1]]; escape != nil {
				b.WriteString(escape(v))
			} else {
				b.WriteString(v)
			}
		}
	}
	return b.String()
}
