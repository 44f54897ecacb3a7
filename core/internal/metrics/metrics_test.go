package metrics

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/core/internal/proxy"
)

func backend(name string) *model.Backend { return &model.Backend{Name: name} }

func route(ns, name string, pt model.PathType, path string, b *model.Backend) *model.Route {
	return &model.Route{PathType: pt, Path: path, Backend: b, Source: model.ObjectRef{Kind: "Ingress", Namespace: ns, Name: name}}
}

// value finds the series of family name with exactly labels (nil: no
// labels) in a fresh Gather: a counter's or gauge's value, a histogram's
// count; -1 when absent.
func value(t *testing.T, reg prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.Metric {
			if len(m.Label) != len(want) {
				continue
			}
			for _, l := range m.Label {
				if want[l.GetName()] != l.GetValue() {
					continue next
				}
			}
			return metricNumber(m)
		}
	}
	return -1
}

func metricNumber(m *dto.Metric) float64 {
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

func count(t *testing.T, reg prometheus.Gatherer, name string) int {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			return len(f.Metric)
		}
	}
	return 0
}

func TestRouteLabel(t *testing.T) {
	for _, tc := range []struct {
		host string
		r    *model.Route
		want string
	}{
		{"shop.example", route("default", "shop", model.PathPrefix, "/api", nil), "default/shop shop.example Prefix /api"},
		{"", route("team", "any", model.PathExact, "/", nil), "team/any * Exact /"},
		{"*.apps.example", route("", "x", model.PathPrefix, "/", nil), "x *.apps.example Prefix /"},
	} {
		if got := RouteLabel(tc.host, tc.r); got != tc.want {
			t.Errorf("RouteLabel = %q, want %q", got, tc.want)
		}
	}
}

func TestObserveRequest(t *testing.T) {
	m := New()
	web, api := backend("default/web:80"), backend("default/api:80")
	shop := route("default", "shop", model.PathPrefix, "/", web)
	cart := route("default", "shop", model.PathExact, "/cart", api)
	snap := &model.Snapshot{Hosts: []*model.VirtualHost{{Name: "shop.example", Routes: []*model.Route{cart, shop}}}, DefaultBackend: web}
	m.SetRoutes(snap)
	reg := m.Registry()
	for _, e := range []proxy.Exchange{
		{Route: shop, Host: "shop.example", Backend: web, Method: "GET", Status: 200, Duration: time.Millisecond, Upstream: time.Millisecond},
		{Route: shop, Host: "shop.example", Backend: web, Method: "GET", Status: 204, Duration: time.Millisecond, Upstream: time.Millisecond},
		{Route: shop, Host: "shop.example", Backend: web, Method: "get", Status: 200},      // not a method: other
		{Route: shop, Host: "shop.example", Backend: web, Method: "PROPFIND", Status: 207}, // other
		{Route: cart, Host: "shop.example", Backend: api, Method: "POST", Status: 502, UpstreamError: proxy.UpstreamUnreachable},
		{Route: cart, Host: "shop.example", Backend: api, Method: "POST", Status: 504, UpstreamError: proxy.UpstreamTimeout},
		{Route: cart, Host: "shop.example", Backend: api, Method: "POST", Status: 503, UpstreamError: proxy.UpstreamNoEndpoints},
		{Route: cart, Host: "shop.example", Backend: api, Method: "DELETE", Status: 499},
		{Backend: web, Method: "GET", Status: 301, Upstream: time.Millisecond}, // default backend
		{Method: "GET", Status: 404}, // nothing matched
		{Method: "GET", Status: 0},   // hijacked, nothing written
	} {
		m.ObserveRequest(e)
	}
	m.ObserveAnswer(RouteHTTPSRedirect, "GET", 308)
	m.ObserveAnswer(RouteHTTPSRedirect, "HEAD", 308)
	m.ObserveAnswer(RouteMisdirected, "GET", 421)
	shopL, cartL := "default/shop shop.example Prefix /", "default/shop shop.example Exact /cart"
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"sluice_http_requests_total", []string{"route", shopL, "method", "GET", "code_class", "2xx"}, 2},
		{"sluice_http_requests_total", []string{"route", shopL, "method", "other", "code_class", "2xx"}, 2},
		{"sluice_http_requests_total", []string{"route", cartL, "method", "POST", "code_class", "5xx"}, 3},
		{"sluice_http_requests_total", []string{"route", cartL, "method", "DELETE", "code_class", "4xx"}, 1},
		{"sluice_http_requests_total", []string{"route", RouteDefaultBackend, "method", "GET", "code_class", "3xx"}, 1},
		{"sluice_http_requests_total", []string{"route", RouteNone, "method", "GET", "code_class", "4xx"}, 1},
		{"sluice_http_requests_total", []string{"route", RouteNone, "method", "GET", "code_class", "other"}, 1},
		{"sluice_http_requests_total", []string{"route", RouteHTTPSRedirect, "method", "GET", "code_class", "3xx"}, 1},
		{"sluice_http_requests_total", []string{"route", RouteHTTPSRedirect, "method", "HEAD", "code_class", "3xx"}, 1},
		{"sluice_http_requests_total", []string{"route", RouteMisdirected, "method", "GET", "code_class", "4xx"}, 1},
		{"sluice_http_request_duration_seconds", []string{"route", shopL}, 4},
		{"sluice_http_request_duration_seconds", []string{"route", cartL}, 4},
		{"sluice_upstream_response_duration_seconds", []string{"backend", "default/web:80"}, 3},
		{"sluice_upstream_response_duration_seconds", []string{"backend", "default/api:80"}, 0},
		{"sluice_upstream_errors_total", []string{"backend", "default/api:80", "kind", "unreachable"}, 1},
		{"sluice_upstream_errors_total", []string{"backend", "default/api:80", "kind", "timeout"}, 1},
		{"sluice_upstream_errors_total", []string{"backend", "default/api:80", "kind", "no_endpoints"}, 1},
		{"sluice_upstream_errors_total", []string{"backend", "default/web:80", "kind", "unreachable"}, 0},
	} {
		if got := value(t, reg, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

// TestSetRoutes: series of removed routes and backends go; kept ones keep
// counting; a table older than the last SetRoutes (the EndpointSlice fast
// path keeps one) still counts under the right label.
func TestSetRoutes(t *testing.T) {
	m := New()
	reg := m.Registry()
	web := backend("default/web:80")
	a := route("default", "a", model.PathPrefix, "/", web)
	b := route("default", "b", model.PathPrefix, "/b", backend("default/b:80"))
	m.SetRoutes(&model.Snapshot{Hosts: []*model.VirtualHost{{Name: "x.example", Routes: []*model.Route{b, a}}}})
	m.ObserveRequest(proxy.Exchange{Route: a, Host: "x.example", Backend: web, Method: "GET", Status: 200})
	m.ObserveRequest(proxy.Exchange{Route: b, Host: "x.example", Backend: b.Backend, Method: "GET", Status: 200, UpstreamError: proxy.UpstreamTimeout})

	// The same rule a in a new snapshot (new pointers); b removed.
	web2 := backend("default/web:80")
	a2 := route("default", "a", model.PathPrefix, "/", web2)
	m.SetRoutes(&model.Snapshot{Hosts: []*model.VirtualHost{{Name: "x.example", Routes: []*model.Route{a2}}}})
	m.ObserveRequest(proxy.Exchange{Route: a2, Host: "x.example", Backend: web2, Method: "GET", Status: 200})
	m.ObserveRequest(proxy.Exchange{Route: a, Host: "x.example", Backend: web, Method: "GET", Status: 200}) // old table
	if got := value(t, reg, "sluice_http_requests_total", "route", "default/a x.example Prefix /", "method", "GET", "code_class", "2xx"); got != 3 {
		t.Errorf("kept route: %v requests, want 3", got)
	}
	if got := value(t, reg, "sluice_http_requests_total", "route", "default/b x.example Prefix /b", "method", "GET", "code_class", "2xx"); got != -1 {
		t.Errorf("removed route still has a series (%v)", got)
	}
	if got := value(t, reg, "sluice_upstream_errors_total", "backend", "default/b:80", "kind", "timeout"); got != -1 {
		t.Errorf("removed backend still has a series (%v)", got)
	}
	if got := value(t, reg, "sluice_upstream_errors_total", "backend", "default/web:80", "kind", "timeout"); got != 0 {
		t.Errorf("kept backend: %v", got)
	}
	// A request that matched the removed route just before the swap is
	// counted, and its series go at the next SetRoutes.
	m.ObserveRequest(proxy.Exchange{Route: b, Host: "x.example", Backend: b.Backend, Method: "GET", Status: 200})
	if got := value(t, reg, "sluice_http_requests_total", "route", "default/b x.example Prefix /b", "method", "GET", "code_class", "2xx"); got != 1 {
		t.Errorf("late request on the removed route: %v, want 1", got)
	}
	m.SetRoutes(&model.Snapshot{Hosts: []*model.VirtualHost{{Name: "x.example", Routes: []*model.Route{a2}}}})
	if n := count(t, reg, "sluice_http_requests_total"); n != 1 {
		t.Errorf("%d request series after the next SetRoutes, want 1 (route a)", n)
	}
	if n := count(t, reg, "sluice_http_request_duration_seconds"); n != 1 {
		t.Errorf("%d duration series, want 1", n)
	}
}

// TestNoTrafficNoSeries: a route without requests costs no series.
func TestNoTrafficNoSeries(t *testing.T) {
	m := New()
	var routes []*model.Route
	for i := range 100 {
		routes = append(routes, route("default", "a", model.PathPrefix, fmt.Sprintf("/p%d", i), backend("default/web:80")))
	}
	m.SetRoutes(&model.Snapshot{Hosts: []*model.VirtualHost{{Name: "x.example", Routes: routes}}})
	for _, name := range []string{"sluice_http_requests_total", "sluice_http_request_duration_seconds"} {
		if n := count(t, m.Registry(), name); n != 0 {
			t.Errorf("%s: %d series before any request", name, n)
		}
	}
}

// TestObserveRequestAllocs: counting a request allocates nothing once its
// series exist.
func TestObserveRequestAllocs(t *testing.T) {
	m := New()
	web := backend("default/web:80")
	r := route("default", "a", model.PathPrefix, "/", web)
	m.SetRoutes(&model.Snapshot{Hosts: []*model.VirtualHost{{Name: "x.example", Routes: []*model.Route{r}}}})
	e := proxy.Exchange{Route: r, Host: "x.example", Backend: web, Method: "GET", Status: 200, Duration: time.Millisecond, Upstream: time.Millisecond}
	m.ObserveRequest(e)
	if n := testing.AllocsPerRun(1000, func() { m.ObserveRequest(e) }); n != 0 {
		t.Errorf("ObserveRequest allocates %v times per call, want 0", n)
	}
}

// TestHammer counts from many goroutines while the routes are swapped and
// the registry scraped; every request is counted exactly once.
func TestHammer(t *testing.T) {
	m := New()
	web := backend("default/web:80")
	snap := func() (*model.Snapshot, *model.Route) {
		r := route("default", "a", model.PathPrefix, "/", web)
		return &model.Snapshot{Hosts: []*model.VirtualHost{{Name: "x.example", Routes: []*model.Route{r}}}}, r
	}
	s, r := snap()
	m.SetRoutes(s)
	const workers, per = 16, 2000
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Add(2)
	go func() { // control loop: new snapshots, same rule
		defer bg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				s, _ := snap()
				m.SetRoutes(s)
			}
		}
	}()
	go func() { // scraper
		defer bg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				if _, err := m.Registry().Gather(); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			methods := []string{"GET", "POST", "BREW"}
			for i := range per {
				m.ObserveRequest(proxy.Exchange{Route: r, Host: "x.example", Backend: web, Method: methods[(w+i)%3], Status: 200 + 100*(i%4)})
			}
		}()
	}
	wg.Wait()
	close(stop)
	bg.Wait()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, f := range fams {
		if f.GetName() == "sluice_http_requests_total" {
			for _, mm := range f.Metric {
				total += mm.Counter.GetValue()
			}
		}
	}
	if total != workers*per {
		t.Errorf("%v requests counted, want %d", total, workers*per)
	}
	if n := count(t, m.Registry(), "sluice_http_requests_total"); n != 3*4 {
		t.Errorf("%d series, want 12 (3 method labels × 4 classes)", n)
	}
}

// mw is a test filter: it answers itself with code, or passes on.
type mw struct {
	code  int // 0: pass on
	write bool
}

func (f mw) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case f.code == 0:
			next.ServeHTTP(w, r)
		case f.write:
			io.WriteString(w, "answered\n") // implicit 200
		default:
			w.WriteHeader(f.code)
		}
	})
}

func TestFilterOutcomes(t *testing.T) {
	m := New()
	reg := m.Registry()
	end := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Context().Value(ctxKey{}) != "kept" {
			t.Error("the request's context values did not reach the end of the chain")
		}
		w.WriteHeader(http.StatusTeapot)
	})
	serve := func(h http.Handler) int {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/", nil)
		h.ServeHTTP(rec, req.WithContext(context.WithValue(req.Context(), ctxKey{}, "kept")))
		return rec.Code
	}
	pass := m.Filter("pass", mw{}).Middleware(end)
	deny := m.Filter("deny", mw{code: 403}).Middleware(end)
	writer := m.Filter("writer", mw{code: 200, write: true}).Middleware(end)
	// Two observed filters nested: each call is counted for its own filter.
	nested := m.Filter("outer", mw{}).Middleware(m.Filter("inner", mw{code: 429}).Middleware(end))
	for range 3 {
		if c := serve(pass); c != http.StatusTeapot {
			t.Fatalf("pass: %d", c)
		}
	}
	if c := serve(deny); c != 403 {
		t.Fatalf("deny: %d", c)
	}
	serve(writer)
	if c := serve(nested); c != 429 {
		t.Fatalf("nested: %d", c)
	}
	for _, c := range []struct {
		filter, outcome, class string
		want                   float64
	}{
		{"pass", "continue", "", 3},
		{"pass", "answer", "4xx", 0},
		{"deny", "answer", "4xx", 1},
		{"deny", "continue", "", 0},
		{"writer", "answer", "2xx", 1},
		{"outer", "continue", "", 1},
		{"inner", "answer", "4xx", 1},
	} {
		if got := value(t, reg, "sluice_filter_handler_calls_total", "filter", c.filter, "outcome", c.outcome, "code_class", c.class); got != c.want {
			t.Errorf("%s %s %s = %v, want %v", c.filter, c.outcome, c.class, got, c.want)
		}
	}
	if got := value(t, reg, "sluice_filter_duration_seconds", "filter", "pass"); got != 3 {
		t.Errorf("pass durations: %v, want 3", got)
	}
}

type ctxKey struct{}

// fakeSource is a Source from plain values.
type fakeSource struct {
	mu      sync.Mutex
	filters []FilterStats
	certs   []Certificate
	tls     TLSStats
}

func (s *fakeSource) Filters() []FilterStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]FilterStats(nil), s.filters...)
}
func (s *fakeSource) Certificates() []Certificate { return s.certs }
func (s *fakeSource) TLS() TLSStats               { return s.tls }

var _ Source = (*fakeSource)(nil)

func TestCollector(t *testing.T) {
	m := New()
	src := &fakeSource{
		certs: []Certificate{{Name: "shop.example", Source: "managed", NotAfter: time.Unix(1800000000, 0)}},
		tls:   TLSStats{Obtained: 2, Failed: 1, OnDemandAllowed: 5, OnDemandDenied: 3, Limited: 1},
	}
	if err := m.Register(NewCollector(m, src)); err != nil {
		t.Fatal(err)
	}
	reg := m.Registry()
	// The chain saw 10 calls pass and 4 answers; 2 of the passes were
	// failures let through (open), 1 answer a failure refused (closed).
	fc := m.filterCounts("auth") // what m.Filter("auth", …) counts into
	fc.next.Add(10)
	fc.answers[classIndex(403)].Add(3)
	fc.answers[classIndex(500)].Add(1)
	first := new(int)
	src.filters = []FilterStats{{ID: first, Name: "auth", Kind: "wasm", Traps: 2, Timeouts: 1, FailedOpen: 2, FailedClosed: 1,
		PoolInUse: 1, PoolIdle: 3, Instantiations: 4}}
	want := func(outcome string, v float64) {
		t.Helper()
		if got := value(t, reg, "sluice_filter_calls_total", "filter", "auth", "outcome", outcome); got != v {
			t.Errorf("outcome %s = %v, want %v", outcome, got, v)
		}
	}
	want("continue", 8)
	want("answer", 3)
	want("trap", 2)
	want("timeout", 1)
	if got := value(t, reg, "sluice_wasm_pool_instances", "filter", "auth", "state", "idle"); got != 3 {
		t.Errorf("idle instances = %v", got)
	}
	// A reload replaces the filter object: its counters restart at zero,
	// the totals must not.
	second := new(int)
	src.mu.Lock()
	src.filters = []FilterStats{{ID: second, Name: "auth", Kind: "wasm", Traps: 1, Instantiations: 1}}
	src.mu.Unlock()
	want("trap", 3)
	if got := value(t, reg, "sluice_wasm_instantiations_total", "filter", "auth", "result", "success"); got != 5 {
		t.Errorf("instantiations = %v, want 5", got)
	}
	want("continue", 8) // never goes down
	src.mu.Lock()
	src.filters = append(src.filters, FilterStats{ID: "plugin authz", Name: "authz", Kind: "plugin", Restarts: 2, Busy: 1})
	src.mu.Unlock()
	if got := value(t, reg, "sluice_plugin_restarts_total", "plugin", "authz"); got != 2 {
		t.Errorf("plugin restarts = %v", got)
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"sluice_certificate_expiry_timestamp_seconds", []string{"name", "shop.example", "source", "managed"}, 1800000000},
		{"sluice_certificate_events_total", []string{"event", "obtained"}, 2},
		{"sluice_certificate_events_total", []string{"event", "failed"}, 1},
		{"sluice_ondemand_decisions_total", []string{"decision", "allowed"}, 5},
		{"sluice_ondemand_decisions_total", []string{"decision", "denied"}, 3},
		{"sluice_ondemand_decisions_total", []string{"decision", "rate_limited"}, 1},
	} {
		if got := value(t, reg, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// The registry is consistent (no duplicate or conflicting series).
	if err := prometheusLint(reg); err != nil {
		t.Error(err)
	}
}

func TestBuildsAndRateLimit(t *testing.T) {
	m := New()
	reg := m.Registry()
	at := time.Unix(1795000000, 0)
	m.BuildSucceeded(10*time.Millisecond, 3, at)
	m.BuildFailed(time.Millisecond)
	m.BuildSucceeded(10*time.Millisecond, 1, at.Add(time.Minute))
	m.RateLimitDecision(true, nil)
	m.RateLimitDecision(false, nil)
	m.RateLimitDecision(false, nil)
	m.RateLimitDecision(false, fmt.Errorf("redis down"))
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"sluice_snapshot_builds_total", []string{"result", "success"}, 2},
		{"sluice_snapshot_builds_total", []string{"result", "failure"}, 1},
		{"sluice_snapshot_warnings", nil, 1},
		{"sluice_snapshot_last_success_timestamp_seconds", nil, 1795000060},
		{"sluice_snapshot_build_duration_seconds", nil, 3},
		{"sluice_ratelimit_decisions_total", []string{"decision", "allowed"}, 1},
		{"sluice_ratelimit_decisions_total", []string{"decision", "denied"}, 2},
		{"sluice_ratelimit_decisions_total", []string{"decision", "error"}, 1},
	} {
		if got := value(t, reg, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

// prometheusLint checks every sluice_ family's name and help text.
func prometheusLint(reg prometheus.Gatherer) error {
	fams, err := reg.Gather()
	if err != nil {
		return err
	}
	for _, f := range fams {
		n := f.GetName()
		if !strings.HasPrefix(n, "sluice_") && !strings.HasPrefix(n, "go_") && !strings.HasPrefix(n, "process_") {
			return fmt.Errorf("family %s: not under sluice_", n)
		}
		if f.GetType() == dto.MetricType_COUNTER && !strings.HasSuffix(n, "_total") {
			return fmt.Errorf("counter %s: name must end in _total", n)
		}
		if f.GetHelp() == "" {
			return fmt.Errorf("family %s: no help", n)
		}
	}
	return nil
}

func BenchmarkObserveRequest(b *testing.B) {
	m := New()
	web := backend("default/web:80")
	r := route("default", "a", model.PathPrefix, "/", web)
	m.SetRoutes(&model.Snapshot{Hosts: []*model.VirtualHost{{Name: "x.example", Routes: []*model.Route{r}}}})
	e := proxy.Exchange{Route: r, Host: "x.example", Backend: web, Method: "GET", Status: 200, Duration: time.Millisecond, Upstream: time.Millisecond}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.ObserveRequest(e)
		}
	})
}

func BenchmarkFilterWrapper(b *testing.B) {
	m := New()
	end := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	bare := mw{}.Middleware(end)
	observed := m.Filter("f", mw{}).Middleware(end)
	req := httptest.NewRequest("GET", "/", nil)
	w := httptest.NewRecorder()
	b.Run("bare", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			bare.ServeHTTP(w, req)
		}
	})
	b.Run("observed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			observed.ServeHTTP(w, req)
		}
	})
}

// A name served by two certificates of one source (two Secrets for one
// host, a SAN listed twice, a name under two ACME issuers in the storage)
// is one series, for the first certificate (the one served): a duplicate
// series would fail the whole scrape.
func TestCertificateNameTwice(t *testing.T) {
	m := New()
	first, second := time.Unix(1800000000, 0), time.Unix(1700000000, 0)
	src := &fakeSource{certs: []Certificate{
		{Name: "shop.example", Source: "static", NotAfter: first},
		{Name: "shop.example", Source: "static", NotAfter: second},
		{Name: "shop.example", Source: "managed", NotAfter: second},
	}}
	if err := m.Register(NewCollector(m, src)); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Registry().Gather(); err != nil {
		t.Fatalf("Gather: %v", err)
	}
	if got := value(t, m.Registry(), "sluice_certificate_expiry_timestamp_seconds", "name", "shop.example", "source", "static"); got != 1800000000 {
		t.Errorf("static expiry = %v, want the first certificate's 1800000000", got)
	}
	if got := value(t, m.Registry(), "sluice_certificate_expiry_timestamp_seconds", "name", "shop.example", "source", "managed"); got != 1700000000 {
		t.Errorf("managed expiry = %v, want 1700000000", got)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Errorf("GET /metrics: status %d: %s", rec.Code, rec.Body)
	}
}
