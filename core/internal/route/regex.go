package route

import (
	"fmt"
	"regexp"
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
	for _, tg := range v.regex {
		if ok && len(tg.route.Path) < len(pre.route.Path) {
			break
		}
		if tg.re.MatchString(path) {
			return tg, true
		}
	}
	return pre, ok
}
