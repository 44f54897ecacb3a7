package config

import (
	"strings"
	"testing"
	"time"
)

func TestPlugins(t *testing.T) {
	p := writeFile(t, "c.yaml", `plugins:
  ext-authz:
    command: ./bin/ext-authz
    args: [--verbose]
    env: {AUTHZ_TOKEN: abc, lower_ok: "1"}
    config: {url: "http://127.0.0.1:9000/check"}
    fail: open
    timeout: 250ms
    max_concurrent: 8
`)
	cfg, err := Load(Sources{File: p})
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.Plugins["ext-authz"]
	if got.Command != "./bin/ext-authz" || len(got.Args) != 1 || got.Env["AUTHZ_TOKEN"] != "abc" || got.Env["lower_ok"] != "1" ||
		got.Config["url"] != "http://127.0.0.1:9000/check" || got.Fail != "open" || got.Timeout != 250*time.Millisecond || got.MaxConcurrent != 8 {
		t.Fatalf("decoded %+v", got)
	}
}

func TestPluginErrors(t *testing.T) {
	for name, tc := range map[string]struct{ body, want string }{
		"no command":    {"plugins: {a: {fail: open}}", "config key plugins.a.command: required"},
		"bad fail":      {"plugins: {a: {command: x, fail: maybe}}", `config key plugins.a.fail: "maybe" is not closed or open`},
		"bad name":      {"plugins: {A_B: {command: x}}", "config key plugins.A_B: the name must be"},
		"bad env":       {`plugins: {a: {command: x, env: {"1X": y}}}`, `config key plugins.a.env: "1X" is not an environment variable name`},
		"negative":      {"plugins: {a: {command: x, max_concurrent: -1}}", "config key plugins.a.max_concurrent: -1 is negative"},
		"neg timeout":   {"plugins: {a: {command: x, timeout: -1s}}", "config key plugins.a.timeout: -1s is negative"},
		"unknown field": {"plugins: {a: {command: x, cmd: y}}", "cmd"},
		"both filter and plugin": {"filters: {a: {module: a.wasm}}\nplugins: {a: {command: x}}",
			"config key plugins.a: filters.a has the same name"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Load(Sources{File: writeFile(t, "c.yaml", tc.body)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
