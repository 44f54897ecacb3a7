// Command benchrun measures Sluice against the upstream alone and against
// nginx, HAProxy and Caddy as plain reverse proxies, on loopback, with wrk,
// in interleaved rounds, and renders the results as markdown (issue 11).
//
// Run it from the repository root (make bench does): it builds the
// gateway, the upstream (bench/cmd/upstream) and the native plugin
// (bench/cmd/benchplugin), starts each proxy anew for every run, and
// writes the raw results and the rendered tables under -out.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// options are benchrun's flags.
type options struct {
	rounds     int
	duration   time.Duration
	warmup     time.Duration
	conns      int
	threads    int
	targets    string
	protos     string
	extras     string
	out        string
	md         string
	bin        string
	keep       bool
	gomaxprocs string
	idleConns  int
	hosts      int
	reloadFor  time.Duration
	rateLimit  int
	wasmCache  string
	notes      []string
}

func main() {
	var o options
	flag.IntVar(&o.rounds, "rounds", 5, "interleaved rounds of every target")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "wrk duration of one run (whole seconds)")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "wrk warm-up before each run (0: none)")
	flag.IntVar(&o.conns, "conns", 64, "wrk connections")
	flag.IntVar(&o.threads, "threads", 1, "wrk threads")
	flag.StringVar(&o.targets, "targets", "", "comma-separated targets (default: all; see -list)")
	flag.StringVar(&o.protos, "protos", "http,https", "http, https or both")
	flag.StringVar(&o.extras, "extras", "mtls,idle,hosts,reload,ratelimit,profile", "extra scenarios to run, comma-separated, or none (profile: perf record of each Sluice target)")
	flag.StringVar(&o.out, "out", "", "write results.json, wrk.txt and BENCHMARKS.md into this folder (empty: none)")
	flag.StringVar(&o.md, "md", "", "also write the rendered markdown to this file")
	flag.StringVar(&o.bin, "bin", "", "folder with prebuilt sluice, upstream, benchplugin (default: go build them)")
	flag.BoolVar(&o.keep, "keep", false, "keep the scratch folder (configs, logs)")
	flag.StringVar(&o.gomaxprocs, "gomaxprocs", "1", "GOMAXPROCS of the Go proxies (Sluice, Caddy)")
	flag.IntVar(&o.idleConns, "idle-conns", 10000, "idle keep-alive connections of the idle scenario")
	flag.IntVar(&o.hosts, "hosts", 10000, "Ingress hosts of the route-table scenario")
	flag.DurationVar(&o.reloadFor, "reload-for", 10*time.Second, "duration of the reload-under-load scenario")
	flag.IntVar(&o.rateLimit, "rate-limit", 200, "requests per second of the rate-limit scenario")
	flag.StringVar(&o.wasmCache, "wasm-cache", "", "wazero compilation cache shared across runs (default: one in the scratch folder)")
	flag.Func("note", "a sentence added to the report (repeatable), e.g. which commit the binaries were built from", func(s string) error {
		o.notes = append(o.notes, s)
		return nil
	})
	list := flag.Bool("list", false, "list the targets and exit")
	rerender := flag.String("render", "", "render saved results.json files (comma-separated) as one report, with the -note sentences added (to -md, or stdout), and exit")
	flag.Parse()
	if *rerender != "" {
		if err := renderSaved(*rerender, o.md, o.notes); err != nil {
			log.Fatalf("benchrun: %v", err)
		}
		return
	}
	if *list {
		for _, t := range targets() {
			fmt.Println(t.Name)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := benchmark(ctx, o); err != nil {
		log.Fatalf("benchrun: %v", err)
	}
}

// report is everything one benchrun invocation measured.
type report struct {
	Started  time.Time
	Command  string
	Machine  machine
	Options  map[string]string
	Missing  []string // targets not measured, with why
	Runs     []run
	MTLS     []run
	Idle     []idleResult
	Hosts    *hostsResult
	Reload   *reloadResult
	Limit    *limitResult
	Profiles []profile
	Notes    []string
	Finished time.Time
}

// run is one measurement of one target.
type run struct {
	Round    int
	Proto    string // http or https
	Target   string
	RPS      float64
	P50us    float64
	P99us    float64
	P999us   float64
	Requests int64
	Failed   int64
	CPUSec   float64 // proxy CPU (utime+stime) during the measured run
	HWMKB    int64   // peak RSS of the proxy process (tree) at the end
	Load1    float64 // load average when the run ended
}

func benchmark(ctx context.Context, o options) error {
	for _, tool := range []string{"wrk", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not on PATH (make bench installs it: bench/run.sh)", tool)
		}
	}
	raiseNoFile()
	dir, err := os.MkdirTemp("", "sluice-bench-")
	if err != nil {
		return err
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
	l, err := newLab(dir, o.bin, o.gomaxprocs, logf)
	if err != nil {
		os.RemoveAll(dir)
		return err
	}
	if o.wasmCache != "" {
		l.wasm = o.wasmCache
	}
	defer func() {
		if err := l.close(o.keep); err != nil {
			logf("cleanup: %v", err)
		}
		if o.keep {
			logf("scratch folder kept: %s", dir)
		}
	}()
	if err := l.startUpstream(); err != nil {
		return err
	}

	rep := &report{Started: time.Now().UTC(), Command: "benchrun " + strings.Join(os.Args[1:], " "), Options: map[string]string{}, Notes: o.notes}
	flag.VisitAll(func(f *flag.Flag) { rep.Options[f.Name] = f.Value.String() })
	rep.Machine = describeMachine(l)
	var wrkLog strings.Builder

	ts, err := selectTargets(o.targets)
	if err != nil {
		return err
	}
	var available []target
	for _, t := range ts {
		if t.Bin != "" {
			if _, err := exec.LookPath(t.Bin); err != nil {
				rep.Missing = append(rep.Missing, fmt.Sprintf("%s: %s is not installed", t.Name, t.Bin))
				logf("not measured: %s (%s is not installed)", t.Name, t.Bin)
				continue
			}
		}
		available = append(available, t)
	}
	ts = available
	protos := strings.Split(o.protos, ",")

	for round := 1; round <= o.rounds; round++ {
		for _, proto := range protos {
			// Rotate the order every round, so no target always runs
			// right after the same neighbour.
			for i := range ts {
				t := ts[(i+round-1)%len(ts)]
				r, out, err := measureTarget(ctx, l, o, t, proto, round)
				fmt.Fprintf(&wrkLog, "### round %d %s %s\n%s\n", round, proto, t.Name, out)
				if err != nil {
					return err
				}
				logf("round %d %-5s %-18s %8.0f req/s  p50 %6.0fµs p99 %6.0fµs p99.9 %6.0fµs  cpu %.2fs  hwm %d KiB  failed %d  load %.2f",
					round, proto, t.Name, r.RPS, r.P50us, r.P99us, r.P999us, r.CPUSec, r.HWMKB, r.Failed, r.Load1)
				rep.Runs = append(rep.Runs, r)
			}
		}
	}

	extras := map[string]bool{}
	for _, e := range strings.Split(o.extras, ",") {
		extras[strings.TrimSpace(e)] = true
	}
	if extras["mtls"] {
		if rep.MTLS, err = mtlsScenario(ctx, l, o, logf); err != nil {
			return fmt.Errorf("mtls scenario: %w", err)
		}
	}
	if extras["idle"] {
		if rep.Idle, err = idleScenario(ctx, l, o, ts, logf); err != nil {
			return fmt.Errorf("idle scenario: %w", err)
		}
	}
	if extras["hosts"] {
		if rep.Hosts, err = hostsScenario(ctx, l, o, logf); err != nil {
			return fmt.Errorf("hosts scenario: %w", err)
		}
	}
	if extras["reload"] {
		if rep.Reload, err = reloadScenario(ctx, l, o, logf); err != nil {
			return fmt.Errorf("reload scenario: %w", err)
		}
	}
	if extras["ratelimit"] {
		if rep.Limit, err = limitScenario(ctx, l, o, logf); err != nil {
			return fmt.Errorf("rate-limit scenario: %w", err)
		}
	}
	if extras["profile"] {
		// A missing perf is not fatal: the rest of the report stands.
		if rep.Profiles, err = profileScenario(ctx, l, o, ts, logf); err != nil {
			rep.Notes = append(rep.Notes, fmt.Sprintf("No CPU profile: %v.", err))
			logf("no profile: %v", err)
		}
	}
	rep.Finished = time.Now().UTC()
	md := render(rep)
	if o.out != "" {
		if err := os.MkdirAll(o.out, 0o755); err != nil {
			return err
		}
		js, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		files := map[string][]byte{"results.json": js, "wrk.txt": []byte(wrkLog.String()), "BENCHMARKS.md": []byte(md)}
		for name, b := range files {
			if err := os.WriteFile(filepath.Join(o.out, name), b, 0o644); err != nil {
				return err
			}
		}
		logf("results in %s", o.out)
	}
	if o.md != "" {
		if err := os.WriteFile(o.md, []byte(md), 0o644); err != nil {
			return err
		}
	}
	if o.out == "" && o.md == "" {
		fmt.Print(md)
	}
	return nil
}

// selectTargets returns the targets named in list (comma-separated, in
// targets() order), or all of them for an empty list.
func selectTargets(list string) ([]target, error) {
	want := map[string]bool{}
	for _, n := range strings.Split(list, ",") {
		if n = strings.TrimSpace(n); n != "" {
			want[n] = true
		}
	}
	all := len(want) == 0
	var out []target
	for _, t := range targets() {
		if all || want[t.Name] {
			out = append(out, t)
			delete(want, t.Name)
		}
	}
	for n := range want {
		return nil, fmt.Errorf("-targets: no target %q (see -list)", n)
	}
	return out, nil
}

// measureTarget starts t (except the shared upstream), checks it serves
// the upstream's body, warms it up, and measures one wrk run.
func measureTarget(ctx context.Context, l *lab, o options, t target, proto string, round int) (run, string, error) {
	name := fmt.Sprintf("%s-r%d-%s", strings.NewReplacer(" ", "", "+", "_").Replace(t.Name), round, proto)
	p, ep, err := t.start(l, name)
	if err != nil {
		return run{}, "", fmt.Errorf("%s: %w", t.Name, err)
	}
	if p != l.upstream {
		defer p.stop()
	}
	base := ep.HTTP
	if proto == "https" {
		base = ep.HTTPS
	}
	url := base + "/"
	if err := l.waitServing(p, url, t.Host, 3*time.Minute); err != nil {
		return run{}, "", err
	}
	w := wrkRun{URL: url, Host: t.Host, Threads: o.threads, Conns: o.conns, Duration: o.duration}
	if o.warmup > 0 {
		ww := w
		ww.Duration = o.warmup
		if _, _, err := ww.run(ctx, l.script); err != nil {
			return run{}, "", fmt.Errorf("%s warm-up: %w", t.Name, err)
		}
	}
	before, err := measure(p.pid())
	if err != nil {
		return run{}, "", err
	}
	res, out, err := w.run(ctx, l.script)
	if err != nil {
		return run{}, out, fmt.Errorf("%s: %w", t.Name, err)
	}
	after, err := measure(p.pid())
	if err != nil {
		return run{}, out, err
	}
	if res.Requests == 0 || res.Failed() >= res.Requests {
		return run{}, out, fmt.Errorf("%s %s: no request succeeded (%d requests, %d failed): a harness or proxy setup problem", t.Name, proto, res.Requests, res.Failed())
	}
	return run{
		Round: round, Proto: proto, Target: t.Name,
		RPS: res.RPS, P50us: us(res.P50), P99us: us(res.P99), P999us: us(res.P999),
		Requests: res.Requests, Failed: res.Failed(),
		CPUSec: after.CPU - before.CPU, HWMKB: after.HWMKB, Load1: load1(),
	}, out, nil
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// load1 is the 1-minute load average.
func load1() float64 {
	b, _ := os.ReadFile("/proc/loadavg")
	var v float64
	fmt.Sscan(string(b), &v)
	return v
}

// raiseNoFile raises this process's open-file limit (the idle scenario
// holds 10,000 connections, and HAProxy wants twice its maxconn); children
// inherit it. As root the hard limit is raised too.
func raiseNoFile() {
	var r syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r) != nil {
		return
	}
	if r.Max < 200000 {
		want := syscall.Rlimit{Cur: 200000, Max: 200000}
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) == nil {
			return
		}
	}
	r.Cur = r.Max
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r)
}

// renderSaved renders results.json files written by earlier runs as one
// report (comma-separated: the runs are added up; a scenario of a later
// file replaces the same scenario of an earlier one), with notes added (a
// reading of the results, written afterwards).
func renderSaved(files, md string, notes []string) error {
	var rep report
	for i, file := range strings.Split(files, ",") {
		b, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		var r report
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		if i == 0 {
			rep = r
			continue
		}
		rep.Command += "\n" + r.Command
		rep.Finished = r.Finished
		rep.Missing = append(rep.Missing, r.Missing...)
		// Rounds of a later file come after those of the earlier ones.
		last := 0
		for _, x := range append(slices.Clone(rep.Runs), rep.MTLS...) {
			last = max(last, x.Round)
		}
		for _, x := range r.Runs {
			x.Round += last
			rep.Runs = append(rep.Runs, x)
		}
		for _, x := range r.MTLS {
			x.Round += last
			rep.MTLS = append(rep.MTLS, x)
		}
		rep.Notes = append(rep.Notes, r.Notes...)
		if len(r.Idle) > 0 {
			rep.Idle = r.Idle
		}
		if len(r.Profiles) > 0 {
			rep.Profiles = r.Profiles
		}
		if r.Hosts != nil {
			rep.Hosts = r.Hosts
		}
		if r.Reload != nil {
			rep.Reload = r.Reload
		}
		if r.Limit != nil {
			rep.Limit = r.Limit
		}
	}
	rep.Notes = append(rep.Notes, notes...)
	if md == "" {
		fmt.Print(render(&rep))
		return nil
	}
	return os.WriteFile(md, []byte(render(&rep)), 0o644)
}

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
