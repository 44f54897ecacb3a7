// Package bench holds the benchmark harness of issue 11 (see
// bench/cmd/benchrun and bench/run.sh). This test keeps it from rotting:
// it runs benchrun end to end in its quick mode against the real gateway
// and wrk, and checks what it measured and rendered.
package bench

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSmoke runs one 1-second round of the upstream directly and Sluice
// without filters over HTTP, a 3-second reload under load and the
// rate-limit scenario, through the real binaries (built here). nginx,
// HAProxy and Caddy are not needed: make bench measures them.
func TestSmoke(t *testing.T) {
	if _, err := exec.LookPath("wrk"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("wrk is not installed: scripts/deps.sh installs it (apt-get install wrk)")
		}
		t.Skip("wrk is not installed (scripts/deps.sh installs it); not run")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "./cmd/sluice", "./bench/cmd/upstream", "./bench/cmd/benchplugin", "./bench/cmd/benchrun")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out := t.TempDir()
	cmd := exec.Command(filepath.Join(bin, "benchrun"), "-bin", bin, "-rounds", "1", "-duration", "1s", "-warmup", "0",
		"-targets", "direct,sluice", "-protos", "http", "-extras", "reload,ratelimit", "-reload-for", "3s", "-rate-limit", "50", "-out", out,
		// Compiled filters survive between test runs, as in cmd/sluice's
		// e2e tests: a cold compile of the rate-limit module under -race
		// load takes tens of seconds.
		"-wasm-cache", filepath.Join(os.TempDir(), "sluice-bench-wazero-cache"))
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("benchrun: %v\n%s", err, b)
	}

	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Runs []struct {
			Target   string
			RPS      float64
			Requests int64
			Failed   int64
			CPUSec   float64
			HWMKB    int64
		}
		Reload struct{ Rewrites, Applied, Status, Socket, Requests int64 }
		Limit  struct{ Limit, Burst, MaxSecond, Total, AllowedTotal, Limited int64 }
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range rep.Runs {
		seen[r.Target] = true
		if r.Requests == 0 || r.RPS <= 0 || r.Failed != 0 || r.HWMKB <= 0 {
			t.Errorf("%s: %+v: want requests, no failure, a peak RSS", r.Target, r)
		}
		if r.Target == "sluice" && r.CPUSec <= 0 {
			t.Errorf("sluice: no CPU time measured: %+v", r)
		}
	}
	if !seen["direct"] || !seen["sluice"] {
		t.Errorf("runs of %v, want direct and sluice", seen)
	}
	if r := rep.Reload; r.Rewrites < 2 || r.Applied < 2 || r.Requests == 0 || r.Status+r.Socket != 0 {
		t.Errorf("reload under load: %+v: want ≥ 2 rewrites applied and no failed request", r)
	}
	if l := rep.Limit; l.Limited == 0 || l.Total == 0 || l.MaxSecond > l.Limit+l.Burst || l.Total > l.AllowedTotal {
		t.Errorf("rate limit: %+v: the upstream saw more than the limit, or nothing was limited", l)
	}
	md, err := os.ReadFile(filepath.Join(out, "BENCHMARKS.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"| sluice | ", "### Hot reload every second under load", "| failed requests during reloads | 0 | 0 | yes |"} {
		if !strings.Contains(string(md), s) {
			t.Errorf("BENCHMARKS.md has no %q:\n%s", s, md)
		}
	}
	if wrk, err := os.ReadFile(filepath.Join(out, "wrk.txt")); err != nil || !strings.Contains(string(wrk), "Requests/sec:") {
		t.Errorf("wrk.txt: %v, want wrk's own report", err)
	}
}
