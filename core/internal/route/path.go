package route

import "strings"

// CleanPath returns the normalized form of a decoded URL path, the form
// Match routes on and the proxy forwards:
//
//   - it starts with "/" ("" and "*" become "/" and "/*");
//   - runs of "/" are merged into one;
//   - "." and ".." segments are removed as in RFC 3986 section 5.2.4
//     (".." never climbs above "/"), so "/a/b/.." is "/a/";
//   - a trailing slash is kept.
//
// It returns p itself, without allocating, when p is already normalized.
func CleanPath(p string) string {
	if isClean(p) {
		return p
	}
	segs := strings.Split(p, "/")
	out := make([]string, 0, len(segs))
	trailing := false
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case "", ".":
			trailing = last
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			trailing = last
		default:
			out = append(out, s)
			trailing = false
		}
	}
	if len(out) == 0 {
		return "/"
	}
	var b strings.Builder
	for _, s := range out {
		b.WriteByte('/')
		b.WriteString(s)
	}
	if trailing {
		b.WriteByte('/')
	}
	return b.String()
}

// isClean reports whether p starts with "/" and has no empty (except a
// final one), "." or ".." segments.
func isClean(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	rest := p[1:]
	for rest != "" {
		seg, tail, found := strings.Cut(rest, "/")
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
		if !found {
			break
		}
		rest = tail
	}
	return true
}
