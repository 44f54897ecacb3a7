// Package metrics holds the gateway's Prometheus metrics in a registry of
// its own (never the global one), served at the admin listener's /metrics.
//
// Two kinds of families:
//
//   - request-path families (requests, durations, upstream latency and
//     errors, filter calls) are counted as requests finish, through handles
//     resolved once per route, backend or filter, so counting allocates
//     nothing;
//   - everything the gateway already counts (filter failures and pool
//     sizes, plugin restarts, certificate events and expiry, on-demand
//     decisions) is read at scrape time from a Source, so the request path
//     pays nothing for it.
//
// Label cardinality is bounded by the configuration, never by traffic: the
// route label is the route's identity as written ("default/web
// demo.example.com Prefix /api"), methods are one of a fixed set or
// "other", statuses are classes ("2xx").
package metrics

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/core/internal/proxy"
)

// Route labels of requests that no route rule served.
const (
	RouteDefaultBackend = "default backend"
	RouteNone           = "none" // no match, or no configuration yet
	// Answered by the listener before routing (ObserveAnswer).
	RouteHTTPSRedirect = "https redirect" // 308 to HTTPS
	RouteMisdirected   = "misdirected"    // 421: Host is not the mTLS SNI
)

// Methods are the method label's values; any other method is "other".
var Methods = [...]string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace, "other",
}

const numMethods = len(Methods)

func methodIndex(m string) int {
	for i, x := range Methods[:numMethods-1] {
		if x == m {
			return i
		}
	}
	return numMethods - 1
}

// CodeClasses are the code_class label's values; a status outside
// 100..599 (a hijacked connection that wrote nothing) is "other".
var CodeClasses = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx", "other"}

const numClasses = len(CodeClasses)

func classIndex(status int) int {
	if status < 100 || status > 599 {
		return numClasses - 1
	}
	return status/100 - 1
}

// RouteLabel is the route label of a rule of virtual host host: the
// route's ID (model.Route.ID), bounded by the configuration.
func RouteLabel(host string, r *model.Route) string { return r.ID(host) }

// Metrics is the gateway's metrics. ObserveRequest and the filter handles
// are safe for concurrent use and allocate nothing once a series exists;
// SetRoutes and the build methods are for the control loop.
type Metrics struct {
	reg *prometheus.Registry

	requests   *prometheus.CounterVec   // route, method, code_class
	duration   *prometheus.HistogramVec // route
	upDuration *prometheus.HistogramVec // backend
	upErrors   *prometheus.CounterVec   // backend, kind

	filterCalls    *prometheus.CounterVec   // filter, outcome (continue, answer)
	filterDuration *prometheus.HistogramVec // filter

	builds        *prometheus.CounterVec // result
	buildDuration prometheus.Histogram
	warnings      prometheus.Gauge
	lastSuccess   prometheus.Gauge

	mu       sync.Mutex               // SetRoutes
	byLabel  map[string]*routeStats   // every route label in the registry
	backends map[string]*backendStats // every backend label in the registry
	// byRoute and byBackend cache handles by pointer for the request
	// path; replaced (never cleared) by SetRoutes.
	byRoute   atomic.Pointer[sync.Map] // *model.Route → *routeStats
	byBackend atomic.Pointer[sync.Map] // *model.Backend → *backendStats
	none      *routeStats
	defaultBE *routeStats
	redirect  *routeStats
	misdirect *routeStats

	fmu     sync.Mutex
	filters map[string]*filterCounts // filters.go

	ratelimit [3]prometheus.Counter // allowed, denied, error
}

var _ proxy.Observer = (*Metrics)(nil)

// routeStats are one route label's series, created at their first use so
// that routes without traffic cost no series.
type routeStats struct {
	label string
	reqs  [numMethods][numClasses]atomic.Pointer[counter]
	dur   atomic.Pointer[observer]
}

type counter struct{ prometheus.Counter }

type observer struct{ prometheus.Observer }

type backendStats struct {
	dur  prometheus.Observer
	errs [3]prometheus.Counter // unreachable, timeout, no_endpoints
}

// Buckets of the request and upstream duration histograms, in seconds.
var durationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// New returns Metrics with every family registered in a new registry,
// plus the Go runtime and process collectors. It starts nothing.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_http_requests_total",
			Help: "Requests served, by route (Ingress, host and path rule as written), method and status class.",
		}, []string{"route", "method", "code_class"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sluice_http_request_duration_seconds",
			Help:    "Time from the request's arrival to the end of its response, by route.",
			Buckets: durationBuckets,
		}, []string{"route"}),
		upDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sluice_upstream_response_duration_seconds",
			Help:    "Time from sending a request upstream to its response headers, by backend (namespace/service:port).",
			Buckets: durationBuckets,
		}, []string{"backend"}),
		upErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_upstream_errors_total",
			Help: "Requests that got no upstream answer, by backend and kind: unreachable (502), timeout (504), no_endpoints (503).",
		}, []string{"backend", "kind"}),
		filterCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_filter_handler_calls_total",
			Help: "Calls of a filter as seen by its chain: outcome continue (passed the request on) or answer (answered itself), with the status class of an answer.",
		}, []string{"filter", "outcome", "code_class"}),
		filterDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sluice_filter_duration_seconds",
			Help:    "Time spent in a filter itself (handle_request and handle_response, not the rest of the chain).",
			Buckets: []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .05, .25, 1},
		}, []string{"filter"}),
		builds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_snapshot_builds_total",
			Help: "Snapshot builds, by result: success (served) or failure (the previous one kept serving).",
		}, []string{"result"}),
		buildDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sluice_snapshot_build_duration_seconds",
			Help:    "Time to translate and build a snapshot.",
			Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5, 30},
		}),
		warnings: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_snapshot_warnings",
			Help: "Warnings of the snapshot being served.",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_snapshot_last_success_timestamp_seconds",
			Help: "Unix time of the last build that was served.",
		}),
		byLabel:  map[string]*routeStats{},
		filters:  map[string]*filterCounts{},
		backends: map[string]*backendStats{},
	}
	m.byRoute.Store(new(sync.Map))
	m.byBackend.Store(new(sync.Map))
	m.none = &routeStats{label: RouteNone}
	m.defaultBE = &routeStats{label: RouteDefaultBackend}
	m.redirect = &routeStats{label: RouteHTTPSRedirect}
	m.misdirect = &routeStats{label: RouteMisdirected}
	rl := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_ratelimit_decisions_total",
		Help: "Token bucket takes of the rate-limit filters, by decision: allowed, denied, error (store unreachable; the filter's on_unavailable decides).",
	}, []string{"decision"})
	m.ratelimit = [3]prometheus.Counter{rl.WithLabelValues("allowed"), rl.WithLabelValues("denied"), rl.WithLabelValues("error")}
	m.reg.MustRegister(rl, m.requests, m.duration, m.upDuration, m.upErrors, m.filterCalls, m.filterDuration,
		m.builds, m.buildDuration, m.warnings, m.lastSuccess,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is the registry every family is in, for tests and for more
// collectors (Register).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Register adds a collector, e.g. the scrape-time Collector.
func (m *Metrics) Register(c prometheus.Collector) error { return m.reg.Register(c) }

// Handler serves the registry in the Prometheus text (or OpenMetrics)
// format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, MaxRequestsInFlight: 4})
}

// SetRoutes makes snap's routes and backends the labelled series: series
// of routes and backends snap no longer has are deleted, the others keep
// counting. Call it with every snapshot that is served, before or after
// the swap.
func (m *Metrics) SetRoutes(snap *model.Snapshot) {
	m.mu.Lock()
	defer m.mu.Unlock()
	byRoute, byBackend := new(sync.Map), new(sync.Map)
	labels := map[string]*routeStats{}
	backends := map[string]*backendStats{}
	addBackend := func(b *model.Backend) {
		if b == nil {
			return
		}
		bs := backends[b.Name]
		if bs == nil {
			bs = m.backends[b.Name]
		}
		if bs == nil {
			bs = m.newBackend(b.Name)
		}
		backends[b.Name] = bs
		byBackend.Store(b, bs)
	}
	if snap != nil {
		for _, vh := range snap.Hosts {
			for _, r := range vh.Routes {
				l := RouteLabel(vh.Name, r)
				rs := labels[l]
				if rs == nil {
					rs = m.byLabel[l]
				}
				if rs == nil {
					rs = &routeStats{label: l}
				}
				labels[l] = rs
				byRoute.Store(r, rs)
				addBackend(r.Backend)
			}
		}
		addBackend(snap.DefaultBackend)
	}
	for l := range m.byLabel {
		if labels[l] == nil {
			m.requests.DeletePartialMatch(prometheus.Labels{"route": l})
			m.duration.DeleteLabelValues(l)
		}
	}
	for b := range m.backends {
		if backends[b] == nil {
			m.upDuration.DeleteLabelValues(b)
			m.upErrors.DeletePartialMatch(prometheus.Labels{"backend": b})
		}
	}
	m.byLabel, m.backends = labels, backends
	m.byRoute.Store(byRoute)
	m.byBackend.Store(byBackend)
}

func (m *Metrics) newBackend(name string) *backendStats {
	return &backendStats{
		dur: m.upDuration.WithLabelValues(name),
		errs: [3]prometheus.Counter{
			m.upErrors.WithLabelValues(name, proxy.UpstreamUnreachable),
			m.upErrors.WithLabelValues(name, proxy.UpstreamTimeout),
			m.upErrors.WithLabelValues(name, proxy.UpstreamNoEndpoints),
		},
	}
}

// route finds the stats of e's route. A route the index does not know (a
// table compiled from an earlier snapshot than the last SetRoutes, as the
// EndpointSlice fast path keeps) is looked up by label once and cached.
func (m *Metrics) route(e *proxy.Exchange) *routeStats {
	if e.Route == nil {
		if e.Backend != nil {
			return m.defaultBE
		}
		return m.none
	}
	idx := m.byRoute.Load()
	if v, ok := idx.Load(e.Route); ok {
		return v.(*routeStats)
	}
	l := RouteLabel(e.Host, e.Route)
	m.mu.Lock()
	rs := m.byLabel[l]
	if rs == nil {
		// Not served any more (a request on the table before the last
		// swap): counted, and its series go at the next SetRoutes.
		rs = &routeStats{label: l}
		m.byLabel[l] = rs
	}
	m.mu.Unlock()
	idx.Store(e.Route, rs)
	return rs
}

func (m *Metrics) backend(b *model.Backend) *backendStats {
	idx := m.byBackend.Load()
	if v, ok := idx.Load(b); ok {
		return v.(*backendStats)
	}
	m.mu.Lock()
	bs := m.backends[b.Name]
	if bs == nil {
		bs = m.newBackend(b.Name)
	}
	m.mu.Unlock()
	idx.Store(b, bs)
	return bs
}

// ObserveRequest counts one finished request (proxy.Observer).
func (m *Metrics) ObserveRequest(e proxy.Exchange) {
	rs := m.route(&e)
	rs.count(m, e.Method, e.Status)
	d := rs.dur.Load()
	if d == nil {
		d = &observer{m.duration.WithLabelValues(rs.label)}
		if !rs.dur.CompareAndSwap(nil, d) {
			d = rs.dur.Load()
		}
	}
	d.Observe(e.Duration.Seconds())
	if e.Backend == nil {
		return
	}
	switch {
	case e.Upstream > 0:
		m.backend(e.Backend).dur.Observe(e.Upstream.Seconds())
	case e.UpstreamError == proxy.UpstreamUnreachable:
		m.backend(e.Backend).errs[0].Inc()
	case e.UpstreamError == proxy.UpstreamTimeout:
		m.backend(e.Backend).errs[1].Inc()
	case e.UpstreamError == proxy.UpstreamNoEndpoints:
		m.backend(e.Backend).errs[2].Inc()
	}
}

func (rs *routeStats) count(m *Metrics, method string, status int) {
	mi, ci := methodIndex(method), classIndex(status)
	c := rs.reqs[mi][ci].Load()
	if c == nil {
		c = &counter{m.requests.WithLabelValues(rs.label, Methods[mi], CodeClasses[ci])}
		if !rs.reqs[mi][ci].CompareAndSwap(nil, c) {
			c = rs.reqs[mi][ci].Load()
		}
	}
	c.Inc()
}

// ObserveAnswer counts a request the listener answered before routing,
// under the route label RouteHTTPSRedirect or RouteMisdirected (any other
// label is counted as RouteNone).
func (m *Metrics) ObserveAnswer(label, method string, status int) {
	rs := m.none
	switch label {
	case RouteHTTPSRedirect:
		rs = m.redirect
	case RouteMisdirected:
		rs = m.misdirect
	}
	rs.count(m, method, status)
}

// BuildSucceeded records a build that is served, with its warnings.
func (m *Metrics) BuildSucceeded(d time.Duration, warnings int, at time.Time) {
	m.builds.WithLabelValues("success").Inc()
	m.buildDuration.Observe(d.Seconds())
	m.warnings.Set(float64(warnings))
	m.lastSuccess.Set(float64(at.UnixNano()) / 1e9)
}

// BuildFailed records a build that was refused.
func (m *Metrics) BuildFailed(d time.Duration) {
	m.builds.WithLabelValues("failure").Inc()
	m.buildDuration.Observe(d.Seconds())
}

// RateLimitDecision counts one token bucket take: allowed or denied, or
// an error when err is not nil.
func (m *Metrics) RateLimitDecision(allowed bool, err error) {
	switch {
	case err != nil:
		m.ratelimit[2].Inc()
	case allowed:
		m.ratelimit[0].Inc()
	default:
		m.ratelimit[1].Inc()
	}
}

func counterValue(c prometheus.Counter) uint64 {
	var d dto.Metric
	if c.Write(&d) != nil || d.Counter == nil {
		return 0
	}
	return uint64(d.Counter.GetValue())
}
