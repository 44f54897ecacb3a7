package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Source is what the gateway already counts, read at scrape time. Its
// methods are called from the scraping goroutine, concurrently with
// serving and with the control loop: they must be safe for that, must not
// block for long, and may return nil.
type Source interface {
	// Filters lists every loaded filter (wasm and plugin). A filter object
	// that was replaced by a reload is a different ID: its counts are
	// kept and the new one's are added.
	Filters() []FilterStats
	// Certificates lists the certificates being served.
	Certificates() []Certificate
	// TLS are the certificate event and on-demand counters.
	TLS() TLSStats
}

// FilterStats are one loaded filter's counters (wasm.Filter.Stats or
// plugins.Manager.Stats).
type FilterStats struct {
	// ID identifies the loaded object (its pointer, say); Name is the
	// filter label.
	ID   any
	Name string
	Kind string // wasm | plugin
	// Failures by kind, and how their policy answered them.
	Traps, Timeouts, MemoryLimits, Busy uint64
	FailedOpen, FailedClosed            uint64
	// WASM pool; zero for plugins.
	PoolInUse, PoolIdle, PoolWaiting    int
	Instantiations, InstantiationErrors uint64
	// Restarts of a plugin's process.
	Restarts uint64
}

// Certificate is one served certificate.
type Certificate struct {
	Name     string // the SAN it is served for
	Source   string // static | managed | on_demand
	NotAfter time.Time
}

// TLSStats are tlsmgr.Stats.
type TLSStats struct {
	Obtained, Renewed, Failed                int64
	OnDemandAllowed, OnDemandDenied, Limited int64
}

// Collector reads a Source at scrape time. Counters stay monotonic across
// reloads: each filter object's counts are accumulated by delta.
type Collector struct {
	m   *Metrics
	src Source

	mu     sync.Mutex
	last   map[any]FilterStats    // per filter object, as last scraped
	totals map[string]*failTotals // per filter label, accumulated
}

type failTotals struct {
	traps, timeouts, memory, busy, open, closed, inst, instErr, restarts uint64
	// outcome continue and answer, kept monotonic (see Collect).
	cont, answer uint64
}

// NewCollector returns the collector of src; register it with
// Metrics.Register.
func NewCollector(m *Metrics, src Source) *Collector {
	return &Collector{m: m, src: src, last: map[any]FilterStats{}, totals: map[string]*failTotals{}}
}

var _ prometheus.Collector = (*Collector)(nil)

var (
	descFilterCalls = prometheus.NewDesc("sluice_filter_calls_total",
		"Filter calls by outcome: continue, answer (answered the request itself), trap, timeout, memory_limit, busy (no instance or plugin unavailable).",
		[]string{"filter", "outcome"}, nil)
	descFilterPolicy = prometheus.NewDesc("sluice_filter_failures_total",
		"Filter failures by how the filter's fail policy handled them: open (skipped) or closed (5xx).",
		[]string{"filter", "policy"}, nil)
	descPoolInstances = prometheus.NewDesc("sluice_wasm_pool_instances",
		"Live WASM instances of a filter by state: in_use or idle.", []string{"filter", "state"}, nil)
	descPoolWaiting = prometheus.NewDesc("sluice_wasm_pool_waiting",
		"Requests waiting for a WASM instance of a filter.", []string{"filter"}, nil)
	descInstantiations = prometheus.NewDesc("sluice_wasm_instantiations_total",
		"WASM instances created, by result.", []string{"filter", "result"}, nil)
	descPluginRestarts = prometheus.NewDesc("sluice_plugin_restarts_total",
		"Plugin processes replaced after a crash or a failed health check.", []string{"plugin"}, nil)
	descCertExpiry = prometheus.NewDesc("sluice_certificate_expiry_timestamp_seconds",
		"Unix time at which a served certificate expires, by name and source (static, managed, on_demand).",
		[]string{"name", "source"}, nil)
	descCertEvents = prometheus.NewDesc("sluice_certificate_events_total",
		"Managed certificate events: obtained, renewed, failed.", []string{"event"}, nil)
	descOnDemand = prometheus.NewDesc("sluice_ondemand_decisions_total",
		"On-demand TLS decisions: allowed, denied, rate_limited.", []string{"decision"}, nil)
)

// Describe sends every family's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descFilterCalls, descFilterPolicy, descPoolInstances, descPoolWaiting,
		descInstantiations, descPluginRestarts, descCertExpiry, descCertEvents, descOnDemand} {
		ch <- d
	}
}

// Collect reads the Source and sends the current values.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.collectFilters(ch)
	// A name that several certificates of one source cover (two Secrets
	// for one host, a name under two ACME issuers) is reported once, for
	// the first one (the one served): a repeated series fails the scrape.
	seen := map[[2]string]bool{}
	for _, cert := range c.src.Certificates() {
		k := [2]string{cert.Name, cert.Source}
		if seen[k] {
			continue
		}
		seen[k] = true
		ch <- prometheus.MustNewConstMetric(descCertExpiry, prometheus.GaugeValue,
			float64(cert.NotAfter.Unix()), cert.Name, cert.Source)
	}
	t := c.src.TLS()
	for ev, v := range map[string]int64{"obtained": t.Obtained, "renewed": t.Renewed, "failed": t.Failed} {
		ch <- prometheus.MustNewConstMetric(descCertEvents, prometheus.CounterValue, float64(v), ev)
	}
	for d, v := range map[string]int64{"allowed": t.OnDemandAllowed, "denied": t.OnDemandDenied, "rate_limited": t.Limited} {
		ch <- prometheus.MustNewConstMetric(descOnDemand, prometheus.CounterValue, float64(v), d)
	}
}

func delta(cur, last uint64) uint64 {
	if cur < last { // cannot happen for one object; be safe
		return 0
	}
	return cur - last
}

func (c *Collector) collectFilters(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[any]bool{}
	type gauges struct{ inUse, idle, waiting int }
	pools := map[string]*gauges{}
	kinds := map[string]string{}
	for _, s := range c.src.Filters() {
		seen[s.ID] = true
		l := c.last[s.ID]
		t := c.totals[s.Name]
		if t == nil {
			t = &failTotals{}
			c.totals[s.Name] = t
		}
		t.traps += delta(s.Traps, l.Traps)
		t.timeouts += delta(s.Timeouts, l.Timeouts)
		t.memory += delta(s.MemoryLimits, l.MemoryLimits)
		t.busy += delta(s.Busy, l.Busy)
		t.open += delta(s.FailedOpen, l.FailedOpen)
		t.closed += delta(s.FailedClosed, l.FailedClosed)
		t.inst += delta(s.Instantiations, l.Instantiations)
		t.instErr += delta(s.InstantiationErrors, l.InstantiationErrors)
		t.restarts += delta(s.Restarts, l.Restarts)
		c.last[s.ID] = s
		kinds[s.Name] = s.Kind
		if s.Kind == "wasm" {
			g := pools[s.Name]
			if g == nil {
				g = &gauges{}
				pools[s.Name] = g
			}
			g.inUse += s.PoolInUse
			g.idle += s.PoolIdle
			g.waiting += s.PoolWaiting
		}
	}
	for id := range c.last {
		if !seen[id] {
			delete(c.last, id)
		}
	}
	for name, t := range c.totals {
		// The chain wrapper sees a failed-open call as continue and a
		// failed-closed one as an answer: take the failures out. The two
		// counts are read at slightly different moments, so keep the
		// result monotonic.
		next, answers, _ := c.m.handlerCounts(name)
		t.cont = max(t.cont, sub(next, t.open))
		t.answer = max(t.answer, sub(answers, t.closed))
		for outcome, v := range map[string]uint64{
			"continue": t.cont, "answer": t.answer, "trap": t.traps, "timeout": t.timeouts,
			"memory_limit": t.memory, "busy": t.busy,
		} {
			ch <- prometheus.MustNewConstMetric(descFilterCalls, prometheus.CounterValue, float64(v), name, outcome)
		}
		ch <- prometheus.MustNewConstMetric(descFilterPolicy, prometheus.CounterValue, float64(t.open), name, "open")
		ch <- prometheus.MustNewConstMetric(descFilterPolicy, prometheus.CounterValue, float64(t.closed), name, "closed")
		switch kinds[name] {
		case "plugin":
			ch <- prometheus.MustNewConstMetric(descPluginRestarts, prometheus.CounterValue, float64(t.restarts), name)
		case "wasm":
			ch <- prometheus.MustNewConstMetric(descInstantiations, prometheus.CounterValue, float64(t.inst), name, "success")
			ch <- prometheus.MustNewConstMetric(descInstantiations, prometheus.CounterValue, float64(t.instErr), name, "error")
		}
	}
	for name, g := range pools {
		ch <- prometheus.MustNewConstMetric(descPoolInstances, prometheus.GaugeValue, float64(g.inUse), name, "in_use")
		ch <- prometheus.MustNewConstMetric(descPoolInstances, prometheus.GaugeValue, float64(g.idle), name, "idle")
		ch <- prometheus.MustNewConstMetric(descPoolWaiting, prometheus.GaugeValue, float64(g.waiting), name)
	}
}

func sub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}
