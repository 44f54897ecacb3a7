package translate_test

import (
	"strings"
	"testing"

	"github.com/sluicegw/sluice/core/internal/translate"
)

func TestParseFilters(t *testing.T) {
	known := func(n string) bool { return n == "ratelimit" || n == "auth" }
	sha := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		in, err string
		n       int
	}{
		{in: "", n: 0},
		{in: "[]", n: 0},
		{in: "- name: ratelimit\n- name: auth\n  fail: open\n", n: 2},
		{in: `[{"name": "ratelimit", "config": {"rate": 1}}]`, n: 1},
		{in: "- name: x\n  module: https://a/b.wasm\n  sha256: " + sha, n: 1},
		{in: "- name: x\n  module: builtin:ratelimit", n: 1},
		{in: "- name: nope", err: `[0].name: no built-in or configured filter "nope"`},
		{in: "- name: Bad_Name", err: "[0].name:"},
		{in: "- name: x\n  module: https://a/b.wasm", err: "[0].sha256: required"},
		{in: "- name: x\n  module: https://a/b.wasm\n  sha256: xyz", err: "[0].sha256: \"xyz\" is not 64 hex digits"},
		{in: "- name: x\n  module: ftp://a/b.wasm", err: "[0].module:"},
		{in: "- name: x\n  module: file://rel/x.wasm", err: "absolute"},
		{in: "- name: x\n  module: file:///a/../b.wasm", err: "clean"},
		{in: "- name: x\n  module: builtin:nope", err: `no built-in filter "nope"`},
		{in: "- name: auth\n  fail: maybe", err: `[0].fail: "maybe"`},
		{in: "- name: auth\n  sha256: " + sha, err: "without a module"},
		{in: "- name: auth\n  modul: file:///x", err: `[0]: unknown field "modul"`},
		{in: "name: auth", err: "must be a list"},
		{in: "- name: x\n  module: https://a/b.wasm\n  sha256: 1234", err: "[0].sha256: must be a string, not a number (quote it in YAML)"},
		{in: "- [unclosed", err: "not YAML"},
	} {
		refs, err := translate.ParseFilters(tc.in, known)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("ParseFilters(%q): %v", tc.in, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseFilters(%q) = %v, want an error containing %q", tc.in, err, tc.err)
		case tc.err == "" && len(refs) != tc.n:
			t.Errorf("ParseFilters(%q) = %d filters, want %d", tc.in, len(refs), tc.n)
		}
	}
}

func FuzzParseFilters(f *testing.F) {
	for _, s := range []string{"- name: a\n  config: {x: 1}\n", "[]", "- name: x\n  module: https://a\n  sha256: 00", "{"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		refs, err := translate.ParseFilters(s, nil)
		if err == nil {
			for _, r := range refs {
				if r.Name == "" {
					t.Fatalf("accepted a filter without a name: %q", s)
				}
			}
		}
	})
}
