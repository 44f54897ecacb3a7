package main

import (
	"bytes"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func TestCheckExample(t *testing.T) {
	root := repoRoot(t)
	var out, errOut bytes.Buffer
	code := run([]string{"check", "--config", filepath.Join(root, "examples/standalone/sluice.yaml"), "--manifests", filepath.Join(root, "examples/standalone/manifests")}, &out, &errOut)
	if code != 0 {
		t.Fatalf("sluice check on the example = %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	for _, want := range []string{"demo.localhost", "/api", "default/web:http", "*.apps.localhost", "0 warning(s)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("check output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestCheckWarnings(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.yaml"), classYAML+"---\n"+ingress("bad", `  rules:
  - host: bad.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: ghost, port: {number: 80}}}}
`))
	var out, errOut bytes.Buffer
	if code := run([]string{"check", "--manifests", dir}, &out, &errOut); code != 1 {
		t.Fatalf("check with a warning = %d, want 1\n%s%s", code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "Ingress default/bad") || !strings.Contains(out.String(), "ghost") {
		t.Fatalf("warning does not name the Ingress and the Service:\n%s", out.String())
	}
}

func TestCLIErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "Usage"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"run", "--no-such-flag"}, 2, "no-such-flag"},
		{[]string{"run"}, 2, "no route source"},
		{[]string{"run", "--kubeconfig", "/nonexistent/kubeconfig"}, 2, "kubeconfig /nonexistent/kubeconfig"},
		{[]string{"run", "--kubeconfig", "x", "--in-cluster"}, 2, "set together with in_cluster"},
		{[]string{"run", "--kubeconfig", "x", "--manifests", "y"}, 2, "choose standalone mode or cluster mode"},
		{[]string{"run", "--manifests", "x", "--http-addr", "nonsense"}, 2, "http_addr"},
		{[]string{"check", "--config", "/nonexistent/sluice.yaml"}, 2, "/nonexistent/sluice.yaml"},
	} {
		var out, errOut bytes.Buffer
		code := run(tc.args, &out, &errOut)
		if code != tc.code || !strings.Contains(out.String()+errOut.String(), tc.want) {
			t.Errorf("sluice %v = %d %q, want %d containing %q", tc.args, code, out.String()+errOut.String(), tc.code, tc.want)
		}
	}
	var out bytes.Buffer
	if code := run([]string{"version"}, &out, &out); code != 0 || !strings.HasPrefix(out.String(), "sluice ") {
		t.Errorf("version: %d %q", code, out.String())
	}
}

// TestCheckFilters: `sluice check` loads the routes' filters as Run would
// and checks the plugins they name without starting them. Each problem is a
// warning naming the Ingress and the entry; a valid chain gives none.
func TestCheckFilters(t *testing.T) {
	dir, cfgDir := t.TempDir(), t.TempDir()
	cfgFile := filepath.Join(cfgDir, "sluice.yaml")
	writeFile(t, cfgFile, `wasm:
  cache_dir: `+wazeroCache+`
plugins:
  authz:
    command: ./no-such-plugin
  plain:
    command: ./plain.txt
`)
	writeFile(t, filepath.Join(cfgDir, "plain.txt"), "not a program\n")
	writeFile(t, filepath.Join(dir, "a.yaml"), classYAML+"---\n"+service("web")+"---\n"+
		filteredIngress("good", "good.test", "web", "name: ratelimit\nconfig: {rate: 5, period: 1s, burst: 5, key: client_ip}")+"---\n"+
		filteredIngress("badconfig", "badconfig.test", "web", "name: ratelimit\nconfig: {limits: [{rate: 0, burst: 2}]}")+"---\n"+
		filteredIngress("nomodule", "nomodule.test", "web", "name: gone\nmodule: file:///nonexistent/gone.wasm")+"---\n"+
		filteredIngress("noplugin", "noplugin.test", "web", "name: authz")+"---\n"+
		filteredIngress("badplugin", "badplugin.test", "web", "name: plain"))
	var out, errOut bytes.Buffer
	code := run([]string{"check", "--config", cfgFile, "--manifests", dir}, &out, &errOut)
	if code != 1 {
		t.Fatalf("check = %d, want 1\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	got := out.String()
	for _, want := range []string{
		"Ingress default/badconfig: ",
		"built-in filter ratelimit: config: limits[0].rate: must be at least 1",
		"Ingress default/nomodule: ",
		"/nonexistent/gone.wasm",
		"Ingress default/noplugin: ",
		filepath.Join(cfgDir, "no-such-plugin"),
		"Ingress default/badplugin: ",
		"config key plugins.plain.command",
		"4 warning(s)",
		"filters ratelimit",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("check output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "Ingress default/good:") {
		t.Errorf("the valid chain got a warning:\n%s", got)
	}
}
