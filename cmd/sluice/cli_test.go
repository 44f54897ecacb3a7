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
