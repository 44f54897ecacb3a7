package route

import (
	"bytes"
	"strings"
)

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
	// buf holds "/" followed by the kept segments, each ending in "/".
	// Paths up to 512 bytes are built on the stack: one allocation.
	var arr [512]byte
	buf := append(arr[:0], '/')
	trailing := true
	for rest := p; ; {
		seg, tail, more := strings.Cut(rest, "/")
		switch seg {
		case "", ".":
			trailing = true
		case "..":
			if len(buf) > 1 {
				buf = buf[:bytes.LastIndexByte(buf[:len(buf)-1], '/')+1]
			}
			trailing = true
		default:
			buf = append(buf, seg...)
			buf = append(buf, '/')
			trailing = false
		}
		if !more {
			break
		}
		rest = tail
	}
	if !trailing && len(buf) > 1 {
		buf = buf[:len(buf)-1]
	}
	return string(buf)
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
