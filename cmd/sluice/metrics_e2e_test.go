package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape reads the real gateway's /metrics.
func scrape(t *testing.T, g *gateway) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + g.addr("admin") + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("scrape: status %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape: parse: %v", err)
	}
	return fams
}

// series returns the metrics of family name whose labels include want.
func series(fams map[string]*dto.MetricFamily, name string, want map[string]string) []*dto.Metric {
	f := fams[name]
	if f == nil {
		return nil
	}
	var out []*dto.Metric
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		out = append(out, m)
	}
	return out
}

// metricValue is the value of the one series of name with labels want (a
// counter, gauge or a histogram's count); -1 when there is none.
func metricValue(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	ms := series(fams, name, want)
	if len(ms) != 1 {
		return -1
	}
	m := ms[0]
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return -1
}

// closedPort is a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// TestMetricsAfterTraffic scrapes the real gateway's /metrics after real
// traffic: requests by route, method and status class, a failing filter's
// trap and timeout outcomes, upstream errors, the local CA certificate's
// expiry, snapshot builds; then sends 10,000 distinct paths and checks the
// series count does not grow.
func TestMetricsAfterTraffic(t *testing.T) {
	var seen sync.Map // X-Request-Id → traceparent + tracestate, as the backend saw them
	be := startBackend(t, "be", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.Header.Get("X-Request-Id"), r.Header.Get("Traceparent")+"|"+r.Header.Get("Tracestate"))
		w.Header().Set("X-Got-Request-Id", r.Header.Get("X-Request-Id"))
		fmt.Fprintln(w, "be")
	}))
	cfgFile := filepath.Join(t.TempDir(), "sluice.yaml")
	writeFile(t, cfgFile, fmt.Sprintf(`wasm:
  timeout: 200ms
filters:
  looper:
    module: %s
    timeout: 50ms
tls:
  issuer: local
  storage: %s
  hosts: [plain.test]
log:
  access_fields: [request_id, method, host, path, status, route, traceparent]
`, guest(t, "loop"), filepath.Join(t.TempDir(), "tls")))

	dir := t.TempDir()
	// A Service whose only endpoint refuses connections.
	down := "---\n" + service("down", &backend{port: closedPort(t)})
	writeFile(t, filepath.Join(dir, "base.yaml"), classYAML+"---\n"+service("be", be)+down)
	writeFile(t, filepath.Join(dir, "plain.yaml"), ingress("plain", `  rules:
  - host: plain.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: be, port: {number: 80}}}}
      - {path: /down, pathType: Prefix, backend: {service: {name: down, port: {number: 80}}}}
`))
	writeFile(t, filepath.Join(dir, "secure.yaml"), ingress("secure", `  tls:
  - hosts: [secure.test]
  rules:
  - host: secure.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: be, port: {number: 80}}}}
`))
	writeFile(t, filepath.Join(dir, "loop.yaml"), filteredIngress("loop", "loop.test", "be", "name: looper"))
	writeFile(t, filepath.Join(dir, "trap.yaml"), filteredIngress("trap", "trap.test", "be", "name: trap\nmodule: file://"+guest(t, "trap")+"\nfail: open"))
	writeFile(t, filepath.Join(dir, "deny.yaml"), filteredIngress("deny", "deny.test", "be", "name: deny\nmodule: file://"+guest(t, "deny")))

	g := startGateway(t, "--config", cfgFile, "--manifests", dir)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(client.CloseIdleConnections)
	do := func(method, host, path string, hdr ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(context.Background(), method, "http://"+g.addr("http")+path, nil)
		req.Host = host
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s%s: %v", method, host, path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	wantStatus := func(resp *http.Response, code int) {
		t.Helper()
		if resp.StatusCode != code {
			t.Fatalf("%s %s%s: status %d, want %d", resp.Request.Method, resp.Request.Host, resp.Request.URL.Path, resp.StatusCode, code)
		}
	}

	const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	const tracestate = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
	for range 5 {
		wantStatus(do("GET", "plain.test", "/", "Traceparent", traceparent, "Tracestate", tracestate), 200)
	}
	for range 2 {
		wantStatus(do("POST", "plain.test", "/"), 200)
	}
	wantStatus(do("BREW", "plain.test", "/"), 200) // not a known method: "other"
	wantStatus(do("GET", "plain.test", "/down"), 502)
	wantStatus(do("GET", "nobody.test", "/"), 404)
	wantStatus(do("GET", "loop.test", "/", "x-loop", "1"), 500) // cut at 50 ms, fail closed
	wantStatus(do("GET", "loop.test", "/"), 200)
	for range 3 {
		wantStatus(do("GET", "trap.test", "/", "x-trap", "1"), 200) // trap, fail open
	}
	wantStatus(do("GET", "deny.test", "/"), 403)
	wantStatus(do("GET", "secure.test", "/"), 308) // HTTP to HTTPS, before routing
	// A client's X-Request-Id is replaced (no trusted proxy configured).
	forged := do("GET", "plain.test", "/", "X-Request-Id", "forged")
	if id := forged.Header.Get("X-Got-Request-Id"); !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) {
		t.Errorf("upstream X-Request-Id %q, want 32 hex digits replacing the client's", id)
	}

	// traceparent and tracestate reach the backend untouched, with the
	// request id the access log names.
	var traced []string
	seen.Range(func(k, v any) bool {
		if v.(string) == traceparent+"|"+tracestate {
			traced = append(traced, k.(string))
		}
		return true
	})
	if len(traced) != 5 {
		t.Fatalf("%d requests reached the backend with the trace headers untouched, want 5", len(traced))
	}
	g.waitLog(t, `"request_id":"`+traced[0]+`"`, `"traceparent":"`+traceparent+`"`, `"route":"Prefix /"`)

	plain := "default/plain plain.test Prefix /"
	waitUntil(t, 20*time.Second, "the local CA certificates of plain.test and secure.test in /metrics", func() bool {
		fams := scrape(t, g)
		return metricValue(fams, "sluice_certificate_expiry_timestamp_seconds", map[string]string{"name": "plain.test", "source": "managed"}) > 0 &&
			metricValue(fams, "sluice_certificate_expiry_timestamp_seconds", map[string]string{"name": "secure.test", "source": "managed"}) > 0 &&
			metricValue(fams, "sluice_certificate_events_total", map[string]string{"event": "obtained"}) == 2
	})
	fams := scrape(t, g)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"sluice_http_requests_total", map[string]string{"route": plain, "method": "GET", "code_class": "2xx"}, 6},
		{"sluice_http_requests_total", map[string]string{"route": plain, "method": "POST", "code_class": "2xx"}, 2},
		{"sluice_http_requests_total", map[string]string{"route": plain, "method": "other", "code_class": "2xx"}, 1},
		{"sluice_http_requests_total", map[string]string{"route": "default/plain plain.test Prefix /down", "method": "GET", "code_class": "5xx"}, 1},
		{"sluice_http_requests_total", map[string]string{"route": "none", "method": "GET", "code_class": "4xx"}, 1},
		{"sluice_http_requests_total", map[string]string{"route": "default/loop loop.test Prefix /", "method": "GET", "code_class": "5xx"}, 1},
		{"sluice_http_requests_total", map[string]string{"route": "default/deny deny.test Prefix /", "method": "GET", "code_class": "4xx"}, 1},
		{"sluice_http_request_duration_seconds", map[string]string{"route": plain}, 9},
		{"sluice_upstream_errors_total", map[string]string{"backend": "default/down:80", "kind": "unreachable"}, 1},
		{"sluice_upstream_response_duration_seconds", map[string]string{"backend": "default/be:80"}, 9 + 1 + 3 + 0},
		{"sluice_filter_calls_total", map[string]string{"filter": "looper", "outcome": "timeout"}, 1},
		{"sluice_filter_calls_total", map[string]string{"filter": "looper", "outcome": "continue"}, 1},
		{"sluice_filter_calls_total", map[string]string{"filter": "trap", "outcome": "trap"}, 3},
		{"sluice_filter_calls_total", map[string]string{"filter": "trap", "outcome": "continue"}, 0},
		{"sluice_filter_calls_total", map[string]string{"filter": "deny", "outcome": "answer"}, 1},
		{"sluice_filter_failures_total", map[string]string{"filter": "trap", "policy": "open"}, 3},
		{"sluice_filter_failures_total", map[string]string{"filter": "looper", "policy": "closed"}, 1},
		{"sluice_filter_handler_calls_total", map[string]string{"filter": "deny", "outcome": "answer", "code_class": "4xx"}, 1},
		{"sluice_http_requests_total", map[string]string{"route": "https redirect", "method": "GET", "code_class": "3xx"}, 1},
		{"sluice_snapshot_builds_total", map[string]string{"result": "success"}, 1},
		{"sluice_snapshot_warnings", nil, 0},
		{"sluice_certificate_events_total", map[string]string{"event": "obtained"}, 2},
	} {
		if got := metricValue(fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if v := metricValue(fams, "sluice_wasm_instantiations_total", map[string]string{"filter": "looper", "result": "success"}); v < 2 {
		t.Errorf("looper instantiations = %v, want at least 2 (the timed-out instance is replaced)", v)
	}
	if v := metricValue(fams, "sluice_snapshot_last_success_timestamp_seconds", nil); v < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("last success timestamp %v is not recent", v)
	}
	exp := metricValue(fams, "sluice_certificate_expiry_timestamp_seconds", map[string]string{"name": "plain.test", "source": "managed"})
	if left := time.Until(time.Unix(int64(exp), 0)); left < 24*time.Hour || left > 400*24*time.Hour {
		t.Errorf("plain.test certificate expires in %v: not a fresh local CA certificate", left)
	}

	// Label cardinality: 10,000 distinct paths add no series.
	before := len(fams["sluice_http_requests_total"].Metric)
	var failed atomic.Int64
	var wg sync.WaitGroup
	const workers, perWorker = 8, 1250
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				req, _ := http.NewRequest("GET", fmt.Sprintf("http://%s/item/%d/%d?q=%d", g.addr("http"), w, i, i), nil)
				req.Host = "plain.test"
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of the 10,000 requests failed", n)
	}
	fams = scrape(t, g)
	if after := len(fams["sluice_http_requests_total"].Metric); after != before {
		t.Errorf("sluice_http_requests_total has %d series after 10,000 distinct paths, %d before", after, before)
	}
	if got := metricValue(fams, "sluice_http_requests_total", map[string]string{"route": plain, "method": "GET", "code_class": "2xx"}); got != 6+workers*perWorker {
		t.Errorf("GET 2xx on %s = %v, want %d", plain, got, 6+workers*perWorker)
	}
	total := 0
	for _, f := range fams {
		if strings.HasPrefix(f.GetName(), "sluice_") {
			total += len(f.Metric)
		}
	}
	if total > 400 {
		t.Errorf("%d sluice_ series for 6 Ingresses: cardinality is not bounded by the configuration", total)
	}
}

// TestAdminTokenRequiredOffLoopback: an admin listener on the network
// without admin.token does not start, and the error names the key.
func TestAdminTokenRequiredOffLoopback(t *testing.T) {
	var out, errOut strings.Builder
	code := run([]string{"run", "--manifests", t.TempDir(), "--admin-addr", "0.0.0.0:0"}, &out, &errOut)
	if code != 2 || !strings.Contains(errOut.String(), `config key admin.token: must be set when admin_addr ("0.0.0.0:0") is not a loopback address`) {
		t.Errorf("sluice run --admin-addr 0.0.0.0:0 = %d %q, want 2 naming admin.token", code, out.String()+errOut.String())
	}
}
