package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// profile is a CPU profile of one Sluice target under wrk, taken with
// perf record (software clock: no hardware counters needed).
type profile struct {
	Target string
	RPS    float64
	// CPUSeconds is perf's event count (cpu-clock counts nanoseconds of
	// CPU): CPUSeconds ÷ Seconds is the share of one core the process got.
	CPUSeconds float64
	Seconds    float64
	DSO        string // perf report --sort dso
	// Self is the self time by kind of code, from perf report
	// --no-children --sort symbol (see selfShares).
	Self string
	Top  string // perf report --children --sort symbol, user-space symbols
}

// profileScenario records a CPU profile of each Sluice target over HTTP.
// It needs perf (Debian: linux-perf) and its software cpu-clock event.
func profileScenario(ctx context.Context, l *lab, o options, ts []target, logf func(string, ...any)) ([]profile, error) {
	if _, err := exec.LookPath("perf"); err != nil {
		return nil, fmt.Errorf("perf is not installed (Debian: linux-perf)")
	}
	var out []profile
	for _, t := range ts {
		if !strings.HasPrefix(t.Name, "sluice") {
			continue
		}
		name := "profile-" + strings.NewReplacer(" ", "", "+", "_").Replace(t.Name)
		p, ep, err := t.start(l, name)
		if err != nil {
			return nil, err
		}
		pr, err := func() (profile, error) {
			defer p.stop()
			if err := l.waitServing(p, ep.HTTP+"/", t.Host, 3*time.Minute); err != nil {
				return profile{}, err
			}
			data := filepath.Join(l.dir, name+".perf")
			secs := max(2, int(o.duration/time.Second))
			// wrk runs one second longer than perf on both sides.
			w := wrkRun{URL: ep.HTTP + "/", Host: t.Host, Threads: o.threads, Conns: o.conns, Duration: time.Duration(secs+2) * time.Second}
			type wres struct {
				r   wrkResult
				err error
			}
			wc := make(chan wres, 1)
			go func() { r, _, err := w.run(ctx, l.script); wc <- wres{r, err} }()
			time.Sleep(time.Second)
			rec := exec.CommandContext(ctx, "perf", "record", "-e", "cpu-clock", "-F", "499", "-g", "-o", data,
				"-p", strconv.Itoa(p.pid()), "--", "sleep", strconv.Itoa(secs))
			if b, err := rec.CombinedOutput(); err != nil {
				return profile{}, fmt.Errorf("perf record: %w\n%s", err, b)
			}
			wr := <-wc
			if wr.err != nil {
				return profile{}, wr.err
			}
			pr := profile{Target: t.Name, RPS: wr.r.RPS, Seconds: float64(secs)}
			dso, err := perfReport(data, "--no-children", "--sort", "dso")
			if err != nil {
				return profile{}, err
			}
			pr.DSO = strings.Join(firstLines(dso, 6, nil), "\n")
			top, err := perfReport(data, "--children", "--sort", "symbol")
			if err != nil {
				return profile{}, err
			}
			pr.Top = strings.Join(firstLines(top, 45, func(s string) bool { return strings.Contains(s, "[.]") }), "\n")
			pr.CPUSeconds = eventSeconds(dso)
			self, err := perfReport(data, "--no-children", "--sort", "symbol")
			if err != nil {
				return profile{}, err
			}
			pr.Self = selfShares(self)
			return pr, nil
		}()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.Name, err)
		}
		logf("profile %s: %.2f CPU seconds in %.0fs, %.0f req/s", pr.Target, pr.CPUSeconds, pr.Seconds, pr.RPS)
		out = append(out, pr)
	}
	return out, nil
}

// selfShares sums the self time of a perf report by kind of code: the
// kernel, the Go runtime (scheduler, GC, allocation), Go's HTTP and I/O
// packages, Sluice's own packages, wazero, unresolved addresses (wazero's
// compiled guest code) and the rest.
func selfShares(report string) string {
	kinds := []struct {
		name  string
		match func(sym string) bool
	}{
		{"kernel", func(s string) bool { return strings.HasPrefix(s, "[k]") }},
		{"sluice (github.com/sluicegw/sluice/...)", func(s string) bool { return strings.Contains(s, "sluicegw/sluice") }},
		{"wazero host", func(s string) bool { return strings.Contains(s, "wazero") }},
		{"guest code (unresolved addresses: wazero's compiled wasm)", func(s string) bool { return strings.HasPrefix(s, "[.] 0x") }},
		{"Go runtime (scheduler, GC, allocation, maps)", func(s string) bool {
			return strings.HasPrefix(s, "[.] runtime.") || strings.HasPrefix(s, "[.] internal/runtime") || strings.HasPrefix(s, "[.] aeshash") || strings.HasPrefix(s, "[.] gogo") || strings.HasPrefix(s, "[.] memeqbody") || strings.HasPrefix(s, "[.] indexbytebody")
		}},
		{"Go net/http, bufio, net, poll, syscall", func(s string) bool {
			for _, p := range []string{"net/http", "bufio.", "net/textproto", "net.", "internal/poll", "syscall.", "net/url"} {
				if strings.HasPrefix(s, "[.] "+p) {
					return true
				}
			}
			return false
		}},
		{"other", func(string) bool { return true }},
	}
	sums := make([]float64, len(kinds))
	for _, line := range strings.Split(report, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || !strings.HasSuffix(f[0], "%") {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSuffix(f[0], "%"), 64)
		if err != nil {
			continue
		}
		sym := f[1] + " " + f[2]
		for i, k := range kinds {
			if k.match(sym) {
				sums[i] += v
				break
			}
		}
	}
	var b strings.Builder
	for i, k := range kinds {
		fmt.Fprintf(&b, "%6.1f%%  %s\n", sums[i], k.name)
	}
	return strings.TrimRight(b.String(), "\n")
}

// eventSeconds reads "# Event count (approx.): N" of a cpu-clock report:
// N nanoseconds of CPU.
func eventSeconds(report string) float64 {
	for _, line := range strings.Split(report, "\n") {
		if v, ok := strings.CutPrefix(line, "# Event count (approx.): "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return n / 1e9
			}
		}
	}
	return 0
}

func perfReport(data string, args ...string) (string, error) {
	cmd := exec.Command("perf", append([]string{"report", "-i", data, "--stdio"}, args...)...)
	cmd.Stderr = nil
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("perf report %s: %w", strings.Join(args, " "), err)
	}
	return string(b), nil
}

// firstLines returns up to n lines of a perf report that start with a
// percentage and pass keep (nil: all), with trailing blanks trimmed.
func firstLines(report string, n int, keep func(string) bool) []string {
	var out []string
	for _, line := range strings.Split(report, "\n") {
		t := strings.TrimSpace(line)
		if t == "" || t[0] < '0' || t[0] > '9' || (keep != nil && !keep(line)) {
			continue
		}
		out = append(out, strings.TrimRight(strings.TrimSuffix(strings.TrimRight(line, " "), "-      -"), " "))
		if len(out) == n {
			break
		}
	}
	return out
}
