package main

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func TestParseWrk(t *testing.T) {
	for _, tc := range []struct {
		file string
		want wrkResult
	}{
		{"wrk-ok.txt", wrkResult{Requests: 41392, Duration: 2037724 * time.Microsecond, P50: 2338 * time.Microsecond, P99: 19639 * time.Microsecond, P999: 32015 * time.Microsecond, Max: 51541 * time.Microsecond}},
		{"wrk-errors.txt", wrkResult{Requests: 38042, Duration: 4 * time.Second, P50: 5900 * time.Microsecond, P99: 21 * time.Millisecond, P999: 40100 * time.Microsecond, Max: 80010 * time.Microsecond, Status: 36000, SocketErrs: 6}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseWrk(string(b))
			if err != nil {
				t.Fatal(err)
			}
			tc.want.RPS = float64(tc.want.Requests) / tc.want.Duration.Seconds()
			if got != tc.want {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseWrkErrors(t *testing.T) {
	for _, tc := range []struct{ in, err string }{
		{"Requests/sec: 100\n", "no BENCH line"},
		{"BENCH requests=1 duration_us=1000\n", "without status"},
		{"BENCH requests=x\n", "requests: strconv.ParseInt"},
		{"BENCH requests\n", `"requests": no '='`},
		{"BENCH requests=1 duration_us=0 status=0 connect=0 read=0 write=0 timeout=0 p50_us=1 p99_us=1 p999_us=1 max_us=1\n", "duration_us 0"},
	} {
		_, err := parseWrk(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("parseWrk(%q) = %v, want an error containing %q", tc.in, err, tc.err)
		}
	}
}

func FuzzParseWrk(f *testing.F) {
	for _, name := range []string{"wrk-ok.txt", "wrk-errors.txt"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseWrk(s)
		if err == nil && (r.Duration <= 0 || r.RPS < 0 && r.Requests >= 0) {
			t.Errorf("parseWrk(%q) = %+v without error", s, r)
		}
	})
}

func TestParseStat(t *testing.T) {
	// The command name holds a space and a parenthesis.
	line := "1234 (a b) c) S 99 1234 1234 0 -1 4194304 100 0 0 0 250 75 0 0 20 0 3 0 12345 1000000 500 18446744073709551615\n"
	st, err := parseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if st.ppid != 99 || st.cpu != 3.25 {
		t.Errorf("got ppid %d cpu %v, want 99 and 3.25", st.ppid, st.cpu)
	}
	for _, bad := range []string{"1234 no paren", "1 (x) S 2 3", "1 (x) S x 1 1 0 -1 0 0 0 0 0 y z"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q): no error", bad)
		}
	}
}

// TestMeasureSelf reads this process's own /proc entries.
func TestMeasureSelf(t *testing.T) {
	u, err := measure(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// HWM and RSS are read one after the other: RSS may have grown past
	// the HWM read a moment before, so only their sign is checked.
	if u.HWMKB <= 0 || u.RSSKB <= 0 || u.CPU < 0 {
		t.Errorf("usage %+v: want positive memory", u)
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// TestRender renders a fixed report and compares it with
// testdata/render.golden (go test -update rewrites it).
func TestRender(t *testing.T) {
	at := time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)
	rep := &report{
		Started: at, Finished: at.Add(10 * time.Minute), Command: "benchrun -rounds 2",
		Machine: machine{CPU: "AMD EPYC", Cores: 2, Kernel: "Linux 6.1", Go: "go1.26.8", Load: "1.00 1.00 1.00 1/100 1",
			Versions: map[string]string{"sluice": "sluice dev", "nginx": "nginx/1.22.1", "haproxy": "HAProxy 2.6.12", "wrk": "wrk 4.1.0", "caddy": "not found"}},
		Options: map[string]string{"threads": "1", "conns": "64", "duration": "5s", "warmup": "1s", "rounds": "2", "gomaxprocs": "1", "idle-conns": "10000"},
		Missing: []string{"caddy: caddy is not installed"},
		Idle:    []idleResult{{Target: "sluice", Conns: 10000, Open: 10000, RSSBeforeKB: 60000, RSSAfterKB: 160000, BytesPerConn: 10240}},
		Reload:  &reloadResult{Duration: 10 * time.Second, Rewrites: 10, Applied: 10, Requests: 1000, RPS: 100, P99us: 900, P999us: 1500, MaxUs: 2000},
		Limit:   &limitResult{Limit: 100, Burst: 10, Duration: 5 * time.Second, Offered: 5000, Limited: 24000, PerSecond: []int64{100, 100, 10}, MaxSecond: 100, Total: 210, AllowedTotal: 510},
	}
	for round := 1; round <= 2; round++ {
		f := float64(round)
		for _, r := range []run{
			{Proto: "http", Target: "direct", RPS: 40000 * f, P50us: 1000, P99us: 2000, P999us: 3000, Requests: 200000},
			{Proto: "http", Target: "sluice", RPS: 10000 * f, P50us: 5000, P99us: 9000, P999us: 12000, Requests: 50000, CPUSec: 4, HWMKB: 70000},
			{Proto: "http", Target: "sluice+2 filters", RPS: 8000 * f, P50us: 6000, P99us: 9500, P999us: 13000, Requests: 40000, CPUSec: 4, HWMKB: 200000},
			{Proto: "http", Target: "nginx", RPS: 20000 * f, P50us: 2000, P99us: 4000, P999us: 5000, Requests: 100000, CPUSec: 3, HWMKB: 16000, Failed: 1},
			{Proto: "https", Target: "direct", RPS: 30000, P50us: 1500, P99us: 2500, P999us: 3500, Requests: 150000},
			{Proto: "https", Target: "sluice", RPS: 9000 + f, P50us: 5000, P99us: 9000, P999us: 12000, Requests: 45000, CPUSec: 4, HWMKB: 70000},
			{Proto: "mtls", Target: "sluice mTLS", RPS: 9000, P50us: 5000, P99us: 9000, P999us: 12000, Requests: 45000, CPUSec: 4, HWMKB: 70000},
			{Proto: "mtls", Target: "sluice mTLS+3 filters", RPS: 3000, P50us: 15000, P99us: 19000, P999us: 22000, Requests: 15000, CPUSec: 4, HWMKB: 300000},
		} {
			r.Round, r.Load1 = round, f
			if r.Proto == "mtls" {
				rep.MTLS = append(rep.MTLS, r)
			} else {
				rep.Runs = append(rep.Runs, r)
			}
		}
	}
	got := render(rep)
	golden := filepath.Join("testdata", "render.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if got != string(want) {
		t.Errorf("render differs from %s (go test -update rewrites it); got:\n%s", golden, got)
	}
	// The figures the targets are judged on.
	for _, s := range []string{
		"| sluice ÷ nginx, http | ≥ 0.80 | 0.50 | **no** |",
		"| three filters ÷ no filters, mTLS | ≥ 0.80 | 0.33 | **no** |",
		"| failed requests during reloads | 0 | 0 | yes |",
		"| memory per idle connection | < 10 KiB | 10.0 KiB | **no** |",
		"**Not measured:** caddy: caddy is not installed",
	} {
		if !strings.Contains(got, s) {
			t.Errorf("render: no %q", s)
		}
	}
}

// TestRenderSavedMerges: two saved runs render as one report, the rounds
// of the second numbered after those of the first, notes added.
func TestRenderSavedMerges(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, rep report) string {
		b, err := json.Marshal(rep)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return f
	}
	one := []run{{Round: 1, Proto: "http", Target: "direct", RPS: 100, Requests: 500}, {Round: 1, Proto: "http", Target: "sluice", RPS: 50, Requests: 250, CPUSec: 1}}
	a := write("a.json", report{Command: "benchrun a", Runs: one})
	b := write("b.json", report{Command: "benchrun b", Runs: one, Reload: &reloadResult{Rewrites: 3, Applied: 3}})
	md := filepath.Join(dir, "out.md")
	if err := renderSaved(a+","+b, md, []string{"a note"}); err != nil {
		t.Fatal(err)
	}
	out, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"benchrun a\nbenchrun b", "medians of 2 rounds", "| 2 | 0.50 |", "| 3 | 3 |", "a note"} {
		if !strings.Contains(string(out), s) {
			t.Errorf("merged report has no %q:\n%s", s, out)
		}
	}
	if err := renderSaved(filepath.Join(dir, "missing.json"), md, nil); err == nil {
		t.Error("a missing file: no error")
	}
}

func TestSelectTargets(t *testing.T) {
	names := func(ts []target) string {
		var out []string
		for _, t := range ts {
			out = append(out, t.Name)
		}
		return strings.Join(out, ",")
	}
	all, err := selectTargets("")
	if err != nil || len(all) != len(targets()) {
		t.Errorf("empty list: %d targets, %v; want all %d", len(all), err, len(targets()))
	}
	some, err := selectTargets("nginx, direct,sluice")
	if err != nil || names(some) != "direct,sluice,nginx" {
		t.Errorf("got %q, %v; want direct,sluice,nginx in targets() order", names(some), err)
	}
	if _, err := selectTargets("sluice,envoy"); err == nil || !strings.Contains(err.Error(), `no target "envoy"`) {
		t.Errorf("unknown target: %v", err)
	}
}

func TestSelfShares(t *testing.T) {
	report := `# Event count (approx.): 2840000000
#
    41.15%  [k] finish_task_switch.isra.0
     2.00%  [.] runtime.mallocgc
     1.00%  [.] internal/runtime/maps.(*Map).getWithoutKeySmallFastStr
     3.00%  [.] syscall.Syscall6
     0.50%  [.] net/http.(*conn).serve
     0.35%  [.] github.com/sluicegw/sluice/core/internal/proxy.(*Handler).ServeHTTP
     5.00%  [.] 0x00007f7841ee6a61
     0.25%  [.] github.com/tetratelabs/wazero/internal/engine/wazevo.(*callEngine).Call
     0.10%  [.] crypto/tls.(*Conn).Write
`
	got := selfShares(report)
	for _, want := range []string{
		"  41.1%  kernel", // 41.15 rounds half to even
		"   0.3%  sluice (github.com/sluicegw/sluice/...)",
		"   0.2%  wazero host",
		"   5.0%  guest code",
		"   3.0%  Go runtime",
		"   3.5%  Go net/http",
		"   0.1%  other",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("selfShares: no %q in\n%s", want, got)
		}
	}
	if s := eventSeconds(report); s != 2.84 {
		t.Errorf("eventSeconds = %v, want 2.84", s)
	}
}
