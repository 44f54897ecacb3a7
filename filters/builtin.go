// Package filters carries Sluice's built-in filters: their compiled wasm
// module, embedded in the gateway binary, and the validation of their
// configs. The sources are Go packages written with the SDK, one per
// filter under filters/NAME, and one program, filters/builtins, that
// carries all three in a single module and runs the one its environment
// names (Env); `make filters` rebuilds it into filters/wasm/builtins.wasm,
// and TestModulesUpToDate fails when the committed module is stale.
package filters

import (
	_ "embed" // the compiled modules
	"fmt"
	"slices"
	"strings"

	"github.com/sluicegw/sluice/filters/policy"
)

// modules are the compiled built-ins, by name: one module for all (see
// filters/builtins). A []byte embed is the binary's own data, not a copy.
var modules = map[string][]byte{
	"header-policy": builtinsWasm,
	"mtls-identity": builtinsWasm,
	"ratelimit":     builtinsWasm,
}

//go:embed wasm/builtins.wasm
var builtinsWasm []byte

// EnvVar is the guest environment variable that selects the built-in an
// instance of the shared module runs.
const EnvVar = "SLUICE_BUILTIN"

// validators parse a built-in's config: the same code the filter runs.
var validators = map[string]func([]byte) error{
	"header-policy": func(b []byte) error { _, err := policy.ParseHeaderPolicy(b); return err },
	"mtls-identity": func(b []byte) error { _, err := policy.ParseMTLSIdentity(b); return err },
	"ratelimit":     func(b []byte) error { _, err := policy.ParseRateLimit(b); return err },
}

// Names returns the names of the built-in filters, sorted.
func Names() []string {
	names := make([]string, 0, len(modules))
	for n := range modules {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Module returns the compiled module of the built-in filter name, and
// false when there is none. The bytes are shared: do not modify them.
func Module(name string) ([]byte, bool) {
	b, ok := modules[name]
	return b, ok
}

// Env returns the guest environment the instances of the built-in filter
// name need (wasm.FilterSpec.Env), and nil when there is no such built-in.
func Env(name string) map[string]string {
	if _, ok := modules[name]; !ok {
		return nil
	}
	return map[string]string{EnvVar: name}
}

// Validate checks config (JSON) for the built-in filter name, as the
// filter will parse it. The error names the field, e.g.
// `config: limits[0].rate: must be at least 1`.
func Validate(name string, config []byte) error {
	if _, ok := Module(name); !ok {
		return fmt.Errorf("no built-in filter %q (built-ins: %s)", name, strings.Join(Names(), ", "))
	}
	if v := validators[name]; v != nil {
		if err := v(config); err != nil {
			return fmt.Errorf("config: %w", err)
		}
	}
	return nil
}
