package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// median of xs (the mean of the middle two for an even count); 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// table indexes runs by proto, target and round.
type table map[string]map[string]map[int]run

func index(runs []run) table {
	t := table{}
	for _, r := range runs {
		if t[r.Proto] == nil {
			t[r.Proto] = map[string]map[int]run{}
		}
		if t[r.Proto][r.Target] == nil {
			t[r.Proto][r.Target] = map[int]run{}
		}
		t[r.Proto][r.Target][r.Round] = r
	}
	return t
}

// col returns f of every round of target, in round order.
func (t table) col(proto, target string, f func(run) float64) []float64 {
	var out []float64
	for _, r := range sortedRuns(t[proto][target]) {
		out = append(out, f(r))
	}
	return out
}

func sortedRuns(m map[int]run) []run {
	var out []run
	for _, r := range m {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b run) int { return a.Round - b.Round })
	return out
}

// ratios returns a's RPS / b's RPS for every round both ran.
func (t table) ratios(proto, a, b string) []float64 {
	var out []float64
	for _, ra := range sortedRuns(t[proto][a]) {
		if rb, ok := t[proto][b][ra.Round]; ok && rb.RPS > 0 {
			out = append(out, ra.RPS/rb.RPS)
		}
	}
	return out
}

// rounds returns the rounds any target of proto ran, in order.
func (t table) rounds(proto string) []int {
	var out []int
	for _, runs := range t[proto] {
		for round := range runs {
			if !slices.Contains(out, round) {
				out = append(out, round)
			}
		}
	}
	slices.Sort(out)
	return out
}

func rpsOf(r run) float64 { return r.RPS }

func cpuPerReq(r run) float64 {
	if r.Requests == 0 {
		return 0
	}
	return r.CPUSec / float64(r.Requests) * 1e6
}

func fmtRatio(xs []float64) string {
	if len(xs) == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", median(xs))
}

func fmtUs(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.2f ms", v/1000)
	}
	return fmt.Sprintf("%.0f µs", v)
}

// targetOrder is the row order: as targets() lists them, then the rest
// (the mTLS rows) by name.
func targetOrder(t table, proto string) []string {
	var out []string
	for _, tg := range targets() {
		if _, ok := t[proto][tg.Name]; ok {
			out = append(out, tg.Name)
		}
	}
	var rest []string
	for name := range t[proto] {
		if !slices.Contains(out, name) {
			rest = append(rest, name)
		}
	}
	slices.Sort(rest) // map order is random; the tables must not be
	return append(out, rest...)
}

var protoTitle = map[string]string{
	"http":  "Keep-alive HTTP/1.1",
	"https": "Keep-alive HTTPS (TLS 1.3, every proxy terminates TLS with the same ECDSA P-256 certificate)",
	"mtls":  "mTLS (client certificate verified), driven by benchrun's Go load generator",
}

// render writes the report as markdown.
func render(rep *report) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	o := rep.Options
	p("## Sluice against nginx, HAProxy and Caddy (`make bench`)\n\n")
	p("Measured %s UTC, %s in all, by:\n\n```\n%s\n```\n\n", rep.Started.Format("2006-01-02 15:04"), rep.Finished.Sub(rep.Started).Round(time.Second), rep.Command)
	m := rep.Machine
	p("Machine: %s, %d cores, %s, %s. Load average at the start: %s", m.CPU, m.Cores, m.Kernel, m.Go, m.Load)
	var loads []float64
	for _, r := range append(slices.Clone(rep.Runs), rep.MTLS...) {
		loads = append(loads, r.Load1)
	}
	if len(loads) > 0 {
		p("; 1-minute load average at the end of the runs: %.1f–%.1f (median %.1f)", slices.Min(loads), slices.Max(loads), median(loads))
	}
	p(". The machine is shared with other engineers' builds and tests, so absolute numbers are noisy: read the ratios, which were measured round by round, seconds apart.\n\n")
	p("| tool | version |\n|---|---|\n")
	for _, k := range []string{"sluice", "nginx", "haproxy", "caddy", "wrk"} {
		p("| %s | %s |\n", k, m.Versions[k])
	}
	p("\n")
	for _, s := range rep.Missing {
		p("- **Not measured:** %s.\n", s)
	}
	// The rounds actually measured (more than -rounds when saved runs
	// were rendered together).
	t := index(append(slices.Clone(rep.Runs), rep.MTLS...))
	rounds := o["rounds"]
	if n := len(t.rounds("http")); n > 0 {
		rounds = fmt.Sprint(n)
	}
	p(`Setup: one upstream (bench/cmd/upstream, Go net/http, a fixed 13-byte body) on loopback behind every proxy; wrk -t%s -c%s -d%s --latency with a Lua script for p99.9 and error counts, after a %s warm-up; each proxy is started anew for every run (so peak RSS is per run) and the targets run in a rotated order every round (%s rounds). One core each: Sluice and Caddy with GOMAXPROCS=%s, nginx with one worker (master_process off), HAProxy with nbthread 1; keep-alive to the upstream everywhere, access logs off. CPU is utime+stime of the proxy process (and its children: Sluice's plugin) over the measured run, from /proc/PID/stat; peak RSS is VmHWM summed over the same processes. wrk and the upstream share the 2 cores with the proxy.

`, o["threads"], o["conns"], o["duration"], o["warmup"], rounds, o["gomaxprocs"])

	for _, proto := range []string{"http", "https", "mtls"} {
		if len(t[proto]) == 0 {
			continue
		}
		base := "direct"
		if proto == "mtls" {
			base = "sluice mTLS"
		}
		p("### %s: medians of %d rounds\n\n", protoTitle[proto], len(t[proto][targetOrder(t, proto)[0]]))
		p("| target | req/s | ÷ %s | sluice ÷ this | p50 | p99 | p99.9 | proxy CPU µs/req | peak RSS | failed |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n", base)
		for _, name := range targetOrder(t, proto) {
			var failed int64
			var hwm []float64
			for _, r := range t[proto][name] {
				failed += r.Failed
				hwm = append(hwm, float64(r.HWMKB))
			}
			vsSluice := "–"
			if proto != "mtls" && (name == "nginx" || name == "haproxy" || name == "caddy") {
				vsSluice = "**" + fmtRatio(t.ratios(proto, "sluice", name)) + "**"
			}
			cpu, mem := fmt.Sprintf("%.1f", median(t.col(proto, name, cpuPerReq))), fmt.Sprintf("%.1f MiB", median(hwm)/1024)
			if name == "direct" {
				cpu, mem = "(upstream)", "–"
			}
			p("| %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %d |\n", name, median(t.col(proto, name, rpsOf)), fmtRatio(t.ratios(proto, name, base)), vsSluice,
				fmtUs(median(t.col(proto, name, func(r run) float64 { return r.P50us }))),
				fmtUs(median(t.col(proto, name, func(r run) float64 { return r.P99us }))),
				fmtUs(median(t.col(proto, name, func(r run) float64 { return r.P999us }))),
				cpu, mem, failed)
		}
		p("\n")
		if proto == "mtls" {
			continue
		}
		// Per-round ratios.
		type pair struct{ a, b string }
		var pairs []pair
		for _, name := range targetOrder(t, proto) {
			if name != "direct" {
				pairs = append(pairs, pair{name, "direct"})
			}
		}
		for _, peer := range []string{"nginx", "haproxy", "caddy"} {
			pairs = append(pairs, pair{"sluice", peer})
		}
		pairs = append(pairs, pair{"sluice+2 filters", "sluice"}, pair{"sluice+plugin", "sluice"})
		var keep []pair
		for _, pr := range pairs {
			if len(t.ratios(proto, pr.a, pr.b)) > 0 {
				keep = append(keep, pr)
			}
		}
		if len(keep) == 0 {
			continue
		}
		p("Per round (req/s ratios; the median row is the median of the rounds, not the ratio of the medians):\n\n| round |")
		for _, pr := range keep {
			p(" %s ÷ %s |", pr.a, pr.b)
		}
		p(" load |\n|---|%s---:|\n", strings.Repeat("---:|", len(keep)))
		for _, round := range t.rounds(proto) {
			p("| %d |", round)
			var load []float64
			for _, runs := range t[proto] {
				if r, ok := runs[round]; ok {
					load = append(load, r.Load1)
				}
			}
			for _, pr := range keep {
				ra, ok1 := t[proto][pr.a][round]
				rb, ok2 := t[proto][pr.b][round]
				if ok1 && ok2 && rb.RPS > 0 {
					p(" %.2f |", ra.RPS/rb.RPS)
				} else {
					p(" – |")
				}
			}
			p(" %.1f |\n", median(load))
		}
		p("| **median** |")
		for _, pr := range keep {
			p(" **%s** |", fmtRatio(t.ratios(proto, pr.a, pr.b)))
		}
		p(" |\n\n")
	}

	// The targets.
	p("### Targets (issue 11)\n\n| target | goal | measured | met? |\n|---|---|---|---|\n")
	goal := func(what, want string, v []float64, min float64) {
		if len(v) == 0 {
			p("| %s | %s | not measured | – |\n", what, want)
			return
		}
		met := "yes"
		if median(v) < min {
			met = "**no**"
		}
		p("| %s | %s | %.2f | %s |\n", what, want, median(v), met)
	}
	for _, proto := range []string{"http", "https"} {
		goal("sluice ÷ nginx, "+proto, "≥ 0.80", t.ratios(proto, "sluice", "nginx"), 0.8)
	}
	goal("three filters ÷ no filters, mTLS", "≥ 0.80", t.ratios("mtls", "sluice mTLS+3 filters", "sluice mTLS"), 0.8)
	for _, proto := range []string{"http", "https"} {
		// Less sensitive to the machine's load than req/s: how much CPU
		// each spends per request (nginx ÷ sluice, so higher is better
		// for Sluice as in the other rows).
		var cpu []float64
		for _, rs := range sortedRuns(t[proto]["sluice"]) {
			if rn, ok := t[proto]["nginx"][rs.Round]; ok && cpuPerReq(rs) > 0 {
				cpu = append(cpu, cpuPerReq(rn)/cpuPerReq(rs))
			}
		}
		goal("nginx CPU per request ÷ sluice CPU per request, "+proto, "(same goal, by CPU)", cpu, 0.8)
	}
	for _, proto := range []string{"http", "https"} {
		goal("header-policy + ratelimit ÷ no filters, "+proto, "≥ 0.80 (two of the three)", t.ratios(proto, "sluice+2 filters", "sluice"), 0.8)
	}
	if rep.Reload != nil {
		met := "yes"
		if rep.Reload.Status+rep.Reload.Socket > 0 {
			met = "**no**"
		}
		p("| failed requests during reloads | 0 | %d | %s |\n", rep.Reload.Status+rep.Reload.Socket, met)
	}
	for _, r := range rep.Idle {
		if r.Target == "sluice" {
			met := "yes"
			if r.BytesPerConn >= 10*1024 {
				met = "**no**"
			}
			p("| memory per idle connection | < 10 KiB | %.1f KiB | %s |\n", r.BytesPerConn/1024, met)
		}
	}
	if rep.Limit != nil {
		met := "yes"
		if rep.Limit.MaxSecond > int64(rep.Limit.Limit+rep.Limit.Burst) || rep.Limit.Total > rep.Limit.AllowedTotal {
			met = "**no**"
		}
		p("| upstream requests under overload | ≤ limit + burst per second | max %d per second (limit %d + burst %d) | %s |\n", rep.Limit.MaxSecond, rep.Limit.Limit, rep.Limit.Burst, met)
	}
	p("\n")

	if len(rep.Idle) > 0 {
		p("### %s idle keep-alive connections (plain HTTP, one request each, then idle)\n\n", o["idle-conns"])
		p("| proxy | connections | RSS before | RSS holding them | per connection | note |\n|---|---:|---:|---:|---:|---|\n")
		for _, r := range rep.Idle {
			p("| %s | %d | %.1f MiB | %.1f MiB | **%.1f KiB** | %s |\n", r.Target, r.Conns, float64(r.RSSBeforeKB)/1024, float64(r.RSSAfterKB)/1024, r.BytesPerConn/1024, r.Note)
		}
		p("\nPer connection = (VmRSS holding the connections − VmRSS before) ÷ connections, 2 s after the last one answered.\n\n")
	}
	if h := rep.Hosts; h != nil {
		p("### A route table of %d Ingress hosts\n\n", h.Hosts)
		p("One manifest file (%.1f MB) of %d Ingresses, one host each, all to one Service.\n\n", float64(h.ManifestBytes)/1e6, h.Hosts)
		p("| what | %d hosts | one route |\n|---|---:|---:|\n", h.Hosts)
		p("| process start → first `configuration applied` log line (read, decode, translate, compile, swap) | %s | |\n", h.StartToApplied.Round(time.Millisecond))
		p("| file replaced → `configuration applied` (a reload of every Ingress) | %s | |\n", h.ReloadApplied.Round(time.Millisecond))
		p("| RSS serving | %.1f MiB | %.1f MiB |\n", float64(h.RSSKB)/1024, float64(h.RSSOneRouteKB)/1024)
		p("| wrk req/s to the last host | %.0f | %.0f |\n\n", h.RPS, h.RPSOneRoute)
		p("The gateway logs no build duration; the times above are from its log's timestamps and include reading and decoding the YAML. Match time, from the Go benchmark in the same run (`go test -run '^$' -bench BenchmarkMatch -benchtime 1s -count 1 ./core/internal/route`):\n\n```\n%s\n```\n\n", h.MatchBench)
	}
	if r := rep.Reload; r != nil {
		p("### Hot reload every second under load\n\n")
		p("wrk -c%s for %s against a route whose Ingress is rewritten (file replaced atomically, one more Exact path each time) every second.\n\n", o["conns"], r.Duration)
		p("| rewrites | `configuration applied` | requests | req/s | error statuses | socket errors | p99 | p99.9 | max |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		p("| %d | %d | %d | %.0f | %d | %d | %s | %s | %s |\n\n", r.Rewrites, r.Applied, r.Requests, r.RPS, r.Status, r.Socket, fmtUs(r.P99us), fmtUs(r.P999us), fmtUs(r.MaxUs))
	}
	if r := rep.Limit; r != nil {
		p("### Rate-limited route under overload\n\n")
		p("Built-in `ratelimit`, `{rate: %d, period: 1s, burst: %d, key: route}`, driven by wrk -c%s for %s as fast as it can (offered: %.0f req/s = %.0f× the limit). The upstream counts the requests it sees per wall-clock second.\n\n", r.Limit, r.Burst, o["conns"], r.Duration, r.Offered, r.Offered/float64(r.Limit))
		p("| upstream per second | max in one second | total | allowed total (limit × s + burst) | answered 429 | socket errors |\n|---|---:|---:|---:|---:|---:|\n")
		var secs []string
		for _, n := range r.PerSecond {
			secs = append(secs, fmt.Sprint(n))
		}
		p("| %s | %d | %d | %d | %d | %d |\n\n", strings.Join(secs, ", "), r.MaxSecond, r.Total, r.AllowedTotal, r.Limited, r.Socket)
	}
	for _, pr := range rep.Profiles {
		p("### CPU profile: %s under wrk (HTTP)\n\n", pr.Target)
		p("`perf record -e cpu-clock -F 499 -g -p PID` for %.0f s during a wrk run (%.0f req/s): %.2f CPU seconds, that is %.2f of a core. By object:\n\n```\n%s\n```\n\n", pr.Seconds, pr.RPS, pr.CPUSeconds, pr.CPUSeconds/pr.Seconds, pr.DSO)
		if pr.Self != "" {
			p("Self time by kind of code:\n\n```\n%s\n```\n\n", pr.Self)
		}
		p("Cumulative (children included) share of the samples, user-space symbols:\n\n```\n%s\n```\n\n", pr.Top)
	}
	for _, n := range rep.Notes {
		p("%s\n\n", n)
	}
	return b.String()
}
