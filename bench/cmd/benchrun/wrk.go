package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// wrkScript makes wrk print one machine-readable line at the end: the
// p99.9 that --latency does not show, and the error counts by kind.
// Latencies are in microseconds.
const wrkScript = `done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH requests=%d duration_us=%d status=%d connect=%d read=%d write=%d timeout=%d p50_us=%d p99_us=%d p999_us=%d max_us=%d\n",
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
`

// wrkResult is one wrk run.
type wrkResult struct {
	Requests   int64
	Duration   time.Duration
	RPS        float64
	P50, P99   time.Duration
	P999, Max  time.Duration
	Status     int64 // answers with status > 399 (wrk's "Non-2xx or 3xx")
	SocketErrs int64 // connect + read + write + timeout
}

// Failed is the number of failed requests: error statuses and socket errors.
func (r wrkResult) Failed() int64 { return r.Status + r.SocketErrs }

// parseWrk reads the BENCH line of wrk's output.
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "BENCH ")
		if !ok {
			continue
		}
		v := map[string]int64{}
		for _, kv := range strings.Fields(line) {
			k, s, ok := strings.Cut(kv, "=")
			if !ok {
				return r, fmt.Errorf("wrk output: %q: no '='", kv)
			}
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return r, fmt.Errorf("wrk output: %s: %w", k, err)
			}
			v[k] = n
		}
		for _, k := range []string{"requests", "duration_us", "status", "connect", "read", "write", "timeout", "p50_us", "p99_us", "p999_us", "max_us"} {
			if _, ok := v[k]; !ok {
				return r, fmt.Errorf("wrk output: BENCH line without %s", k)
			}
		}
		if v["duration_us"] <= 0 {
			return r, fmt.Errorf("wrk output: duration_us %d", v["duration_us"])
		}
		us := func(k string) time.Duration { return time.Duration(v[k]) * time.Microsecond }
		r = wrkResult{
			Requests: v["requests"], Duration: us("duration_us"),
			P50: us("p50_us"), P99: us("p99_us"), P999: us("p999_us"), Max: us("max_us"),
			Status:     v["status"],
			SocketErrs: v["connect"] + v["read"] + v["write"] + v["timeout"],
		}
		r.RPS = float64(r.Requests) / r.Duration.Seconds()
		return r, nil
	}
	if err := sc.Err(); err != nil {
		return r, err
	}
	return r, fmt.Errorf("wrk output: no BENCH line (is the Lua script loaded?)")
}

// wrkRun is one wrk invocation.
type wrkRun struct {
	URL      string
	Host     string // Host header; empty: from the URL
	Threads  int
	Conns    int
	Duration time.Duration
}

// run runs wrk and returns its parsed result and its whole output.
func (w wrkRun) run(ctx context.Context, script string) (wrkResult, string, error) {
	args := []string{"-t", strconv.Itoa(w.Threads), "-c", strconv.Itoa(w.Conns),
		"-d", fmt.Sprintf("%ds", max(1, int(w.Duration.Round(time.Second)/time.Second))),
		"--latency", "-s", script}
	if w.Host != "" {
		args = append(args, "-H", "Host: "+w.Host)
	}
	args = append(args, w.URL)
	cmd := exec.CommandContext(ctx, "wrk", args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return wrkResult{}, string(out), fmt.Errorf("wrk %s: %w", strings.Join(args, " "), err)
	}
	r, err := parseWrk(string(out))
	if err != nil {
		return r, string(out), fmt.Errorf("wrk %s: %w", strings.Join(args, " "), err)
	}
	return r, string(out), nil
}
