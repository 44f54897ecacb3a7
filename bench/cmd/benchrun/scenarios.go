package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// mtlsScenario measures the three built-in filters against no filter,
// both on an mTLS route (client certificate verified), driven by goLoad
// since wrk cannot present a client certificate.
func mtlsScenario(ctx context.Context, l *lab, o options, logf func(string, ...any)) ([]run, error) {
	cases := []struct {
		name string
		r    route
	}{
		{"sluice mTLS", route{host: "m.bench.test", mtls: true}},
		{"sluice mTLS+3 filters", route{host: "m3.bench.test", mtls: true, filters: threeFilters}},
	}
	var out []run
	for round := 1; round <= o.rounds; round++ {
		for i := range cases {
			c := cases[(i+round-1)%len(cases)]
			name := fmt.Sprintf("mtls%d-r%d", i, round)
			p, ep, _, err := l.startSluice(filepath.Join(l.dir, name), name, manifests(l, []route{c.r}), nil)
			if err != nil {
				return nil, err
			}
			r, err := func() (run, error) {
				defer p.stop()
				cfg := &tls.Config{RootCAs: l.roots, ServerName: c.r.host, Certificates: []tls.Certificate{l.client}}
				g := goLoad{URL: ep.HTTPS + "/", Host: c.r.host, Conns: o.conns, Duration: o.duration, TLS: cfg}
				if err := waitMTLS(ctx, p, g); err != nil {
					return run{}, fmt.Errorf("%s: %w; its log:\n%s", c.name, err, tailText(l.logText(name), 2000))
				}
				if o.warmup > 0 {
					w := g
					w.Duration = o.warmup
					w.run(ctx)
				}
				before, err := measure(p.pid())
				if err != nil {
					return run{}, err
				}
				res := g.run(ctx)
				after, err := measure(p.pid())
				if err != nil {
					return run{}, err
				}
				return run{Round: round, Proto: "mtls", Target: c.name, RPS: res.RPS,
					P50us: us(res.P50), P99us: us(res.P99), P999us: us(res.P999),
					Requests: res.Requests, Failed: res.Failed(),
					CPUSec: after.CPU - before.CPU, HWMKB: after.HWMKB, Load1: load1()}, nil
			}()
			if err != nil {
				return nil, err
			}
			logf("mtls round %d %-22s %8.0f req/s  p50 %6.0fµs p99 %6.0fµs  cpu %.2fs  failed %d", round, c.name, r.RPS, r.P50us, r.P99us, r.CPUSec, r.Failed)
			out = append(out, r)
		}
	}
	return out, nil
}

// waitMTLS waits until one request of g answers 200.
func waitMTLS(ctx context.Context, p *proc, g goLoad) error {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: g.TLS}}
	defer c.CloseIdleConnections()
	deadline := time.Now().Add(3 * time.Minute)
	var last string
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if p.exited() {
			return fmt.Errorf("exited: %v", p.err)
		}
		status, body, err := get(c, g.URL, g.Host)
		if err == nil && status == 200 && body == upstreamBody {
			return nil
		}
		last = fmt.Sprintf("status %d body %q err %v", status, body, err)
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not serving: last %s", last)
}

// idleResult is the memory of one proxy holding idle keep-alive
// connections.
type idleResult struct {
	Target       string
	Conns        int
	Open         int   // connections still open (answered a request) at the end
	RSSBeforeKB  int64 // VmRSS with no client connection
	RSSAfterKB   int64 // VmRSS holding the connections
	BytesPerConn float64
	Note         string `json:",omitempty"`
}

// idleScenario opens n keep-alive connections to each proxy, sends one
// request on each, keeps them idle and reads the proxy's RSS.
func idleScenario(ctx context.Context, l *lab, o options, ts []target, logf func(string, ...any)) ([]idleResult, error) {
	var out []idleResult
	for _, t := range ts {
		if t.Name == "direct" || strings.Contains(t.Name, "+") {
			continue // the upstream and the filter variants: same listener as "sluice"
		}
		name := "idle-" + t.Name
		p, ep, err := t.start(l, name)
		if err != nil {
			return nil, err
		}
		r, err := func() (idleResult, error) {
			defer p.stop()
			if err := l.waitServing(p, ep.HTTP+"/", t.Host, 3*time.Minute); err != nil {
				return idleResult{}, err
			}
			time.Sleep(time.Second)
			before, err := measure(p.pid())
			if err != nil {
				return idleResult{}, err
			}
			n := o.idleConns
			if t.MaxConns > 0 && n > t.MaxConns {
				n = t.MaxConns
			}
			conns, err := openIdle(ctx, strings.TrimPrefix(ep.HTTP, "http://"), t.Host, n)
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			if err != nil {
				return idleResult{}, fmt.Errorf("%s: %d of %d connections: %w", t.Name, len(conns), n, err)
			}
			time.Sleep(2 * time.Second)
			after, err := measure(p.pid())
			if err != nil {
				return idleResult{}, err
			}
			// Still open? One more request on every 100th connection.
			open := 0
			for i := 0; i < len(conns); i += 100 {
				if oneRequest(conns[i], bufio.NewReader(conns[i]), t.Host) == nil {
					open++
				}
			}
			r := idleResult{Target: t.Name, Conns: len(conns), RSSBeforeKB: before.RSSKB, RSSAfterKB: after.RSSKB,
				BytesPerConn: float64(after.RSSKB-before.RSSKB) * 1024 / float64(len(conns))}
			r.Open = open * 100
			if open*100 < len(conns)-99 {
				r.Note = fmt.Sprintf("only %d of %d sampled connections still answered", open, (len(conns)+99)/100)
			}
			if n < o.idleConns {
				r.Note = strings.TrimPrefix(r.Note+"; ", "; ") + fmt.Sprintf("capped at %d: maxconn 9990 (2 × maxconn must fit the open-file limit of 20,000)", n)
			}
			return r, nil
		}()
		if err != nil {
			return nil, err
		}
		logf("idle %-8s %d conns: RSS %d → %d KiB, %.0f B/conn", r.Target, r.Conns, r.RSSBeforeKB, r.RSSAfterKB, r.BytesPerConn)
		out = append(out, r)
	}
	return out, nil
}

// openIdle opens n connections to addr, sends one keep-alive request on
// each and reads its answer, 32 at a time.
func openIdle(ctx context.Context, addr, host string, n int) ([]net.Conn, error) {
	conns := make([]net.Conn, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				errs[i] = err
				return
			}
			c.SetDeadline(time.Now().Add(30 * time.Second))
			if err := oneRequest(c, bufio.NewReaderSize(c, 512), host); err != nil {
				c.Close()
				errs[i] = err
				return
			}
			c.SetDeadline(time.Time{})
			conns[i] = c
		}()
	}
	wg.Wait()
	var open []net.Conn
	var first error
	for i, c := range conns {
		if c != nil {
			open = append(open, c)
		} else if first == nil {
			first = errs[i]
		}
	}
	return open, first
}

// oneRequest sends GET / on c and reads a 200 answer with the upstream's
// body.
func oneRequest(c net.Conn, br *bufio.Reader, host string) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", host); err != nil {
		return err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b := make([]byte, len(upstreamBody)+1)
	k, _ := resp.Body.Read(b)
	if resp.StatusCode != 200 || string(b[:k]) != upstreamBody {
		return fmt.Errorf("answer %d %q", resp.StatusCode, b[:k])
	}
	return nil
}

// hostsResult is the route table of N Ingress hosts.
type hostsResult struct {
	Hosts          int
	ManifestBytes  int64
	StartToApplied time.Duration // process start → first "configuration applied"
	ReloadApplied  time.Duration // manifest replaced → next "configuration applied"
	RSSKB          int64         // VmRSS serving the table
	RSSOneRouteKB  int64         // VmRSS of a gateway with one route, same config
	RPS            float64       // wrk against the last host
	RPSOneRoute    float64       // wrk against a gateway with one route, same run
	MatchBench     string        // go test -bench BenchmarkMatch output lines
}

func hostsManifest(l *lab, n int, salt string) string {
	var b strings.Builder
	b.WriteString(manifests(l, nil))
	for i := range n {
		fmt.Fprintf(&b, `---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: h%05d, namespace: default%s}
spec:
  ingressClassName: sluice
  rules:
  - host: h%05d.bench.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: up, port: {number: 80}}}}
`, i, salt, i)
	}
	return b.String()
}

// appliedTimes returns the times of the "configuration applied" lines of
// a gateway's JSON log.
func appliedTimes(log string) []time.Time {
	var out []time.Time
	for _, line := range strings.Split(log, "\n") {
		var e struct {
			Time time.Time `json:"time"`
			Msg  string    `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Msg == "configuration applied" {
			out = append(out, e.Time)
		}
	}
	return out
}

func hostsScenario(ctx context.Context, l *lab, o options, logf func(string, ...any)) (*hostsResult, error) {
	res := &hostsResult{Hosts: o.hosts}
	last := fmt.Sprintf("h%05d.bench.test", o.hosts-1)
	w := wrkRun{Threads: o.threads, Conns: o.conns, Duration: o.duration, Host: last}

	// One route first: the baseline of memory and throughput.
	one := route{host: last}
	p1, ep1, _, err := l.startSluice(filepath.Join(l.dir, "hosts-1"), "hosts-1", manifests(l, []route{one}), nil)
	if err != nil {
		return nil, err
	}
	err = func() error {
		defer p1.stop()
		if err := l.waitServing(p1, ep1.HTTP+"/", last, time.Minute); err != nil {
			return err
		}
		w.URL = ep1.HTTP + "/"
		r, _, err := w.run(ctx, l.script)
		if err != nil {
			return err
		}
		res.RPSOneRoute = r.RPS
		u, err := measure(p1.pid())
		res.RSSOneRouteKB = u.RSSKB
		return err
	}()
	if err != nil {
		return nil, err
	}

	m := hostsManifest(l, o.hosts, "")
	res.ManifestBytes = int64(len(m))
	start := time.Now()
	p, ep, md, err := l.startSluice(filepath.Join(l.dir, "hosts"), "hosts", m, nil)
	if err != nil {
		return nil, err
	}
	defer p.stop()
	if err := l.waitServing(p, ep.HTTP+"/", last, 3*time.Minute); err != nil {
		return nil, err
	}
	ts := appliedTimes(l.logText("hosts"))
	if len(ts) == 0 {
		return nil, fmt.Errorf("no \"configuration applied\" line in the gateway's log")
	}
	res.StartToApplied = ts[0].Sub(start)
	w.URL = ep.HTTP + "/"
	r, _, err := w.run(ctx, l.script)
	if err != nil {
		return nil, err
	}
	res.RPS = r.RPS
	u, err := measure(p.pid())
	if err != nil {
		return nil, err
	}
	res.RSSKB = u.RSSKB

	// A reload: every Ingress gets a label, the file is replaced.
	written := time.Now()
	if err := replaceFile(filepath.Join(md, "all.yaml"), hostsManifest(l, o.hosts, ", labels: {v: \"2\"}")); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if ts := appliedTimes(l.logText("hosts")); len(ts) > 1 {
			res.ReloadApplied = ts[1].Sub(written)
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no second \"configuration applied\" within 2 minutes of the rewrite")
		}
		time.Sleep(20 * time.Millisecond)
	}
	logf("hosts %d: start→applied %s, reload→applied %s, RSS %d KiB (one route %d KiB), %.0f req/s (one route %.0f)",
		res.Hosts, res.StartToApplied.Round(time.Millisecond), res.ReloadApplied.Round(time.Millisecond), res.RSSKB, res.RSSOneRouteKB, res.RPS, res.RPSOneRoute)

	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", "BenchmarkMatch", "-benchtime", "1s", "-count", "1", "./core/internal/route")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("go test -bench BenchmarkMatch: %w\n%s", err, out)
	}
	var lines []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "BenchmarkMatch") {
			lines = append(lines, line)
		}
	}
	res.MatchBench = strings.Join(lines, "\n")
	return res, nil
}

// replaceFile writes path atomically (a temporary file renamed over it),
// as editors and kubectl-style tools do.
func replaceFile(path, body string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// reloadResult is a wrk run during which the route's manifest was
// rewritten every second.
type reloadResult struct {
	Duration time.Duration
	Rewrites int
	Applied  int // "configuration applied" lines during the run
	Requests int64
	RPS      float64
	Status   int64 // answers with status > 399
	Socket   int64 // connect/read/write/timeout errors
	P99us    float64
	P999us   float64
	MaxUs    float64
}

func reloadScenario(ctx context.Context, l *lab, o options, logf func(string, ...any)) (*reloadResult, error) {
	version := func(i int) string {
		// The served Ingress itself changes: one more Exact path each time.
		r := route{host: "bench.test"}
		y := ingressYAML("r0", r) + fmt.Sprintf("      - {path: /v%d, pathType: Exact, backend: {service: {name: up, port: {number: 80}}}}\n", i)
		return manifests(l, nil) + "---\n" + y
	}
	p, ep, md, err := l.startSluice(filepath.Join(l.dir, "reload"), "reload", version(0), nil)
	if err != nil {
		return nil, err
	}
	defer p.stop()
	if err := l.waitServing(p, ep.HTTP+"/", "bench.test", 3*time.Minute); err != nil {
		return nil, err
	}
	before := len(appliedTimes(l.logText("reload")))
	res := &reloadResult{Duration: o.reloadFor}
	done := make(chan error, 1)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for i := 1; ; i++ {
			select {
			case <-wctx.Done():
				done <- nil
				return
			case <-t.C:
			}
			if err := replaceFile(filepath.Join(md, "all.yaml"), version(i)); err != nil {
				done <- err
				return
			}
			res.Rewrites = i
		}
	}()
	w := wrkRun{URL: ep.HTTP + "/", Host: "bench.test", Threads: o.threads, Conns: o.conns, Duration: o.reloadFor}
	r, _, err := w.run(ctx, l.script)
	cancel()
	if werr := <-done; werr != nil {
		return nil, werr
	}
	if err != nil {
		return nil, err
	}
	time.Sleep(500 * time.Millisecond)
	res.Applied = len(appliedTimes(l.logText("reload"))) - before
	res.Requests, res.RPS, res.Status, res.Socket = r.Requests, r.RPS, r.Status, r.SocketErrs
	res.P99us, res.P999us, res.MaxUs = us(r.P99), us(r.P999), us(r.Max)
	logf("reload: %d rewrites, %d applied, %d requests, %d error statuses, %d socket errors", res.Rewrites, res.Applied, res.Requests, res.Status, res.Socket)
	return res, nil
}

// limitResult is a rate-limited route driven far over its limit.
type limitResult struct {
	Limit, Burst int
	Duration     time.Duration
	Offered      float64 // requests per second wrk sent
	Limited      int64   // answers with status > 399 (429)
	Socket       int64
	PerSecond    []int64 // requests the upstream saw, per whole second
	MaxSecond    int64
	Total        int64
	AllowedTotal int64 // Limit × seconds + Burst
}

func limitScenario(ctx context.Context, l *lab, o options, logf func(string, ...any)) (*limitResult, error) {
	n := o.rateLimit
	burst := max(1, n/10)
	res := &limitResult{Limit: n, Burst: burst, Duration: max(5*time.Second, o.duration)}
	filters := fmt.Sprintf("- name: ratelimit\n  config: {rate: %d, period: 1s, burst: %d, key: route}", n, burst)
	p, ep, _, err := l.startSluice(filepath.Join(l.dir, "limit"), "limit", manifests(l, []route{{host: "bench.test", filters: filters}}), nil)
	if err != nil {
		return nil, err
	}
	defer p.stop()
	if err := l.waitServing(p, ep.HTTP+"/", "bench.test", 3*time.Minute); err != nil {
		return nil, err
	}
	time.Sleep(2 * time.Second) // the bucket refills after the readiness probes
	if _, err := l.counts(); err != nil {
		return nil, err
	}
	w := wrkRun{URL: ep.HTTP + "/", Host: "bench.test", Threads: o.threads, Conns: o.conns, Duration: res.Duration}
	r, _, err := w.run(ctx, l.script)
	if err != nil {
		return nil, err
	}
	counts, err := l.counts()
	if err != nil {
		return nil, err
	}
	secs := make([]string, 0, len(counts))
	for s := range counts {
		secs = append(secs, s)
	}
	slices.SortFunc(secs, func(a, b string) int {
		x, _ := strconv.ParseInt(a, 10, 64)
		y, _ := strconv.ParseInt(b, 10, 64)
		return int(x - y)
	})
	for _, s := range secs {
		res.PerSecond = append(res.PerSecond, counts[s])
		res.Total += counts[s]
		res.MaxSecond = max(res.MaxSecond, counts[s])
	}
	res.Offered = r.RPS
	res.Limited, res.Socket = r.Status, r.SocketErrs
	res.AllowedTotal = int64(float64(n)*r.Duration.Seconds()) + int64(burst)
	logf("rate limit %d/s burst %d: offered %.0f req/s, upstream max %d in one second, total %d (allowed %d), %d limited", n, burst, res.Offered, res.MaxSecond, res.Total, res.AllowedTotal, res.Limited)
	return res, nil
}
