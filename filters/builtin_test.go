package filters

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicegw/sluice/wasm/filtertest"
)

// TestModulesUpToDate rebuilds the built-ins' module from its source and
// compares it with the committed one: `make filters` after changing a
// filter.
func TestModulesUpToDate(t *testing.T) {
	out := filepath.Join(t.TempDir(), "builtins.wasm")
	if err := filtertest.BuildGo("builtins", out); err != nil {
		t.Fatal(err)
	}
	built, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range Names() {
		if committed, _ := Module(name); !bytes.Equal(built, committed) {
			t.Fatalf("filters/wasm/builtins.wasm is stale (%d bytes, the source builds %d): run make filters", len(committed), len(built))
		}
	}
}

func TestNamesAndModule(t *testing.T) {
	names := Names()
	sources, err := filepath.Glob("*/go.mod")
	if err != nil {
		t.Fatal(err)
	}
	if len(sources) != len(names)+1 {
		t.Errorf("sources %v, built-ins %v: every filters/NAME/go.mod is a built-in (plus filters/builtins)", sources, names)
	}
	if !strings.Contains(strings.Join(names, ","), "ratelimit") {
		t.Fatalf("Names() = %v, want ratelimit among them", names)
	}
	for _, n := range names {
		b, ok := Module(n)
		if !ok || !bytes.HasPrefix(b, []byte("\x00asm")) {
			t.Errorf("Module(%q): %v, %d bytes, not a wasm module", n, ok, len(b))
		}
		if _, err := os.Stat(filepath.Join(n, "filter.go")); err != nil {
			t.Errorf("built-in %q has no source: %v", n, err)
		}
		if env := Env(n); env[EnvVar] != n {
			t.Errorf("Env(%q) = %v", n, env)
		}
	}
	for _, n := range []string{"", "nope", "../wasm/ratelimit", "ratelimit.wasm", "builtins"} {
		if _, ok := Module(n); ok {
			t.Errorf("Module(%q) found a module", n)
		}
		if Env(n) != nil {
			t.Errorf("Env(%q) is not nil", n)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name, config, err string
	}{
		{"ratelimit", `{"rate":10,"burst":20,"key":"client_ip"}`, ""},
		{"ratelimit", `{"rate":0}`, "config: rate: required"},
		{"ratelimit", `{"rate":-1}`, "config: rate: must be at least 1"},
		{"ratelimit", `{"limits":[{"rate":1},{"rate":-1}]}`, "config: limits[1].rate: must be at least 1"},
		{"ratelimit", `{"rate":1,"rat":2}`, `config: unknown field "rat"`},
		{"header-policy", `{"request":{"set":{"X-Id":"${request_id}"},"request_id":true},"response":{"hsts":true}}`, ""},
		{"header-policy", `{"request":{"require":[{"name":"X","match":"("}]}}`, "config: request.require[0].match: error parsing regexp"},
		{"mtls-identity", `{"allow":[{"trust_domain":"shop.test"}],"forward":"xfcc"}`, ""},
		{"mtls-identity", `{"allow":[{"dns":"a.*.test"}]}`, "config: allow[0].dns"},
		{"nope", `{}`, `no built-in filter "nope"`},
	} {
		err := Validate(tc.name, []byte(tc.config))
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.err)) {
			t.Errorf("Validate(%s, %s) = %v, want %q", tc.name, tc.config, err, tc.err)
		}
	}
}
