package secretstore

import (
	"strings"
	"testing"
)

// ParseLabel accepts exactly key=value pairs that are valid labels, and
// never panics.
func FuzzParseLabel(f *testing.F) {
	for _, s := range []string{DefaultLabel, "app=", "a=b=c", "=", "", "a b=c", "example.com/x=y", strings.Repeat("k", 64) + "=v"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, v, err := ParseLabel(s)
		if err != nil {
			return
		}
		if k+"="+v != s || k == "" {
			t.Fatalf("ParseLabel(%q) = %q, %q", s, k, v)
		}
	})
}

// parents lists every folder of a key, root first, each a prefix of the
// key ending where a "/" follows.
func FuzzParents(f *testing.F) {
	for _, s := range []string{"a", "a/b/c", "certificates/ca/h.test/h.test.crt", "/", "a//b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		ps := parents(key)
		if len(ps) != strings.Count(key, "/")+1 || ps[0] != "" {
			t.Fatalf("parents(%q) = %q", key, ps)
		}
		for _, p := range ps[1:] {
			if !strings.HasPrefix(key, p+"/") {
				t.Fatalf("parents(%q): %q is not a folder of it", key, p)
			}
		}
	})
}
