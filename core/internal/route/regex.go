package route

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
)

// MaxRegexPath is the longest regex path CompileRegexPath accepts.
const MaxRegexPath = 1024

// CompileRegexPath compiles the path of a model.PathRegex route as
// ingress-nginx writes its location, `~* "^PATH"`: RE2 syntax, matched
// without regard to case, anchored at the start of the normalized request
// path only (so "/api" also matches "/apix"). The path must start with "/".
func CompileRegexPath(path string) (*regexp.Regexp, error) {
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("regex path %q must start with \"/\"", path)
	}
	if len(path) > MaxRegexPath {
		return nil, fmt.Errorf("regex path is %d bytes, more than %d", len(path), MaxRegexPath)
	}
	// Compile the path alone first, so the error quotes what was written.
	if _, err := regexp.Compile(path); err != nil {
		return nil, fmt.Errorf("regex path is not an RE2 regular expression: %w", err)
	}
	return regexp.Compile("(?i)^" + path)
}

// addRegex inserts tg into v.regex, keeping it ordered as ingress-nginx
// orders locations: longer path (as written) first; equal lengths by path,
// for determinism. Of two routes with the same path the first one stays.
func (v *vhost) addRegex(tg target) {
	i, found := slices.BinarySearchFunc(v.regex, tg, func(a, b target) int {
		if la, lb := len(a.route.Path), len(b.route.Path); la != lb {
			return lb - la
		}
		return strings.Compare(a.route.Path, b.route.Path)
	})
	if !found {
		v.regex = slices.Insert(v.regex, i, tg)
	}
}

// matchRegex picks between the regex routes and pre, the longest Prefix
// route that matched (ok false: none). ingress-nginx turns every path of
// a host with regex paths into a regex and takes the first that matches,
// longest path first; here Prefix routes keep their Ingress meaning and
// take their place in that order by the length of their path as written.
// A regex route wins on equal length.
func (v *vhost) matchRegex(path string, pre target, ok bool) (target, bool) {
	for i := range v.regex {
		tg := &v.regex[i] // no copy of the target per route tried
		if ok && len(tg.route.Path) < len(pre.route.Path) {
			break
		}
		if hasPrefixFold(path, tg.lit) && tg.re.MatchString(path) {
			return *tg, true
		}
	}
	return pre, ok
}

// literalPrefix returns a prefix that every path the regex path matches
// starts with, ignoring ASCII case, so most regex routes are ruled out
// without running the regex: the literal right after "^" when "^PATH"
// parses as "^" followed by more (not so with a top-level "|", whose
// other branches are not anchored). It is cut before the first byte whose
// case folding leaves ASCII: "k" and "s" (the Kelvin sign and the long s
// fold to them under (?i)) and any non-ASCII byte.
func literalPrefix(path string) string {
	re, err := syntax.Parse("^"+path, syntax.Perl)
	if err != nil || re.Op != syntax.OpConcat || len(re.Sub) < 2 ||
		re.Sub[0].Op != syntax.OpBeginText || re.Sub[1].Op != syntax.OpLiteral {
		return ""
	}
	lit := string(re.Sub[1].Rune)
	if i := strings.IndexFunc(lit, func(r rune) bool {
		return r >= 0x80 || strings.ContainsRune("kKsS", r)
	}); i >= 0 {
		lit = lit[:i]
	}
	return lit
}

// hasPrefixFold reports whether s starts with the ASCII prefix, ignoring
// ASCII case.
func hasPrefixFold(s, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		a, b := s[i], prefix[i]
		if a != b && (a|0x20 != b|0x20 || a|0x20 < 'a' || a|0x20 > 'z') {
			return false
		}
	}
	return true
}
