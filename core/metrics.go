package core

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/sluicegw/sluice/core/internal/config"
	"github.com/sluicegw/sluice/core/internal/metrics"
	"github.com/sluicegw/sluice/plugins"
	"github.com/sluicegw/sluice/wasm"
)

// Observability glue (issue 10): the metrics the request path and the
// control loop count, and the scrape-time views of filters and
// certificates that /metrics and the admin API share.

// obsGlue is the Gateway's observability part. Its views are read from
// the admin listener's goroutines: everything here is safe for that.
type obsGlue struct {
	metrics *metrics.Metrics
	plugins atomic.Pointer[plugins.Manager] // set by the control loop

	mu          sync.Mutex // guards lastSuccess and lastError
	lastSuccess time.Time
	lastError   string

	// certMu guards certs. It is not mu: refreshing the cache reads the
	// certificate storage (the API server in cluster mode), which must not
	// hold up the control loop's observeBuild.
	certMu sync.Mutex
	certs  certCache
}

// certCache is the served certificates, re-read when the state changes or
// after certTTL (managed ones renew in the background).
type certCache struct {
	st   *state
	at   time.Time
	list []servedCert
}

const certTTL = 10 * time.Second

type servedCert struct {
	names    []string
	issuer   string
	notAfter time.Time
	kind     string // static | managed | on_demand
	source   string
}

func (g *Gateway) initObservability(cfg *config.Config) {
	g.obs.metrics = metrics.New()
	_ = g.obs.metrics.Register(metrics.NewCollector(g.obs.metrics, metricsSource{g}))
}

// accessLogger is the access log's logger when log.access_format differs
// from log.format; nil means the process logger.
func accessLogger(cfg *config.Config, g *Gateway) *slog.Logger {
	if cfg.Log.AccessFormat == "" || cfg.Log.AccessFormat == cfg.Log.Format {
		return nil
	}
	out := g.opts.LogOutput
	if out == nil {
		return nil
	}
	hopts := &slog.HandlerOptions{Level: &g.logLevel}
	if cfg.Log.AccessFormat == "json" {
		return slog.New(slog.NewJSONHandler(out, hopts))
	}
	return slog.New(slog.NewTextHandler(out, hopts))
}

// observeBuild records a build: served (err nil) or refused.
func (g *Gateway) observeBuild(st *state, d time.Duration, err error) {
	if g.obs.metrics == nil {
		return
	}
	g.obs.mu.Lock()
	defer g.obs.mu.Unlock()
	if err != nil {
		g.obs.lastError = err.Error()
		g.obs.metrics.BuildFailed(d)
		return
	}
	g.obs.lastSuccess, g.obs.lastError = st.built, ""
	g.obs.metrics.BuildSucceeded(d, len(st.warnings), st.built)
	g.obs.metrics.SetRoutes(st.snap)
	g.obs.plugins.Store(g.plugins)
}

// observeAnswer counts a request a listener answered before routing.
func (g *Gateway) observeAnswer(label string, r *http.Request, status int) {
	if g.obs.metrics != nil {
		g.obs.metrics.ObserveAnswer(label, r.Method, status)
	}
}

// observeFilter counts a chain entry under its name.
func (g *Gateway) observeFilter(name string, m middleware) middleware {
	if g.obs.metrics == nil {
		return m
	}
	return g.obs.metrics.Filter(name, m)
}

// countingStore counts the rate-limit filters' token bucket decisions.
type countingStore struct {
	wasm.Store
	m *metrics.Metrics
}

func (s countingStore) Take(ctx context.Context, key string, l wasm.Limit) (wasm.Decision, error) {
	d, err := s.Store.Take(ctx, key, l)
	s.m.RateLimitDecision(d.Allowed, err)
	return d, err
}

// observeStore wraps the wasm host's Store (nil: the in-memory one).
func (g *Gateway) observeStore(s wasm.Store) wasm.Store {
	if g.obs.metrics == nil {
		return s
	}
	if s == nil {
		s = wasm.NewMemoryStore()
	}
	return countingStore{s, g.obs.metrics}
}

// loadedFilter is one filter the served state uses.
type loadedFilter struct {
	id     any
	name   string
	kind   string // wasm | plugin
	module string
	digest string
	wasm   *wasm.Filter
	plugin plugins.Stats
}

// loadedFilters lists the served state's wasm filters and the running
// plugins. The state's filter map is never modified once built.
func (g *Gateway) loadedFilters() []loadedFilter {
	var out []loadedFilter
	if st := g.live.Load(); st != nil && st.chains != nil {
		for key, f := range st.chains.used {
			var spec struct{ Module string }
			_ = json.Unmarshal([]byte(key), &spec) // specKey's JSON
			out = append(out, loadedFilter{id: f, name: f.Name(), kind: "wasm", module: spec.Module, digest: f.Digest(), wasm: f})
		}
	}
	if pm := g.obs.plugins.Load(); pm != nil {
		for _, n := range pm.Names() {
			if s, ok := pm.Stats(n); ok {
				out = append(out, loadedFilter{id: "plugin " + n, name: n, kind: "plugin", plugin: s})
			}
		}
	}
	slices.SortFunc(out, func(a, b loadedFilter) int { return strings.Compare(a.name, b.name) })
	return out
}

// metricsSource is the scrape-time view for the metrics collector.
type metricsSource struct{ g *Gateway }

var _ metrics.Source = metricsSource{}

func (s metricsSource) Filters() []metrics.FilterStats {
	var out []metrics.FilterStats
	for _, f := range s.g.loadedFilters() {
		fs := metrics.FilterStats{ID: f.id, Name: f.name, Kind: f.kind}
		if f.wasm != nil {
			st := f.wasm.Stats()
			fs.Traps, fs.Timeouts, fs.MemoryLimits, fs.Busy = st.Traps, st.Deadlines, st.MemoryCaps, st.Busy
			fs.FailedOpen, fs.FailedClosed = st.FailedOpen, st.FailedShut
			fs.PoolInUse, fs.PoolIdle, fs.PoolWaiting = st.Pool.InUse, st.Pool.Idle, st.Pool.Waiting
			fs.Instantiations, fs.InstantiationErrors = st.Pool.Instantiations, st.Pool.CreateErrors
		} else {
			p := f.plugin
			fs.Traps, fs.Timeouts, fs.Busy = p.Errors, p.Timeouts, p.Unavailable
			fs.FailedOpen, fs.FailedClosed, fs.Restarts = p.FailedOpen, p.FailedShut, p.Restarts
		}
		out = append(out, fs)
	}
	return out
}

func (s metricsSource) Certificates() []metrics.Certificate {
	var out []metrics.Certificate
	for _, c := range s.g.servedCertificates() {
		for _, n := range c.names {
			out = append(out, metrics.Certificate{Name: n, Source: c.kind, NotAfter: c.notAfter})
		}
	}
	return out
}

func (s metricsSource) TLS() metrics.TLSStats {
	t := s.g.tls.mgr.Stats()
	return metrics.TLSStats{Obtained: t.Obtained, Renewed: t.Renewed, Failed: t.Failed,
		OnDemandAllowed: t.OnDemandAllowed, OnDemandDenied: t.OnDemandDenied, Limited: t.RateLimited}
}

// servedCertificates are the static certificates of the served state and
// the managed and on-demand ones in the certmagic storage, cached for
// certTTL.
func (g *Gateway) servedCertificates() []servedCert {
	st := g.live.Load()
	if st == nil {
		return nil
	}
	g.obs.certMu.Lock()
	defer g.obs.certMu.Unlock()
	c := &g.obs.certs
	if c.st == st && time.Since(c.at) < certTTL {
		return c.list
	}
	var list []servedCert
	for _, mc := range staticCertificates(st.cfg, st.snap) {
		leaf := parseLeaf(mc.CertPEM)
		if leaf == nil {
			continue
		}
		list = append(list, servedCert{names: certNames(leaf), issuer: issuerName(leaf), notAfter: leaf.NotAfter,
			kind: "static", source: mc.Source.String()})
	}
	managed := map[string]bool{}
	for _, n := range tlsView(st).Managed {
		managed[n] = true
	}
	list = append(list, storedCertificates(g.tls.mgr.Storage(), g.tls.mgr.CachedLeaf, managed)...)
	*c = certCache{st: st, at: time.Now(), list: list}
	return list
}

// storedCertificates lists the certificates certmagic keeps in its storage
// (certificates/ISSUER/NAME/NAME.crt; files, or Secrets in cluster mode):
// managed when the name is in managed, else obtained on demand. A
// certificate the manager holds in memory (cached) is read from there, so
// with Secrets a refresh costs one List, not a GET per certificate.
func storedCertificates(storage certmagic.Storage, cached func(name string) *x509.Certificate, managed map[string]bool) []servedCert {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	keys, err := storage.List(ctx, "certificates", true)
	if err != nil {
		return nil
	}
	slices.Sort(keys)
	var out []servedCert
	for _, k := range keys {
		if !strings.HasSuffix(k, ".crt") {
			continue
		}
		// certmagic's storage keys spell "*." as "wildcard_.".
		name := strings.Replace(strings.TrimSuffix(path.Base(k), ".crt"), "wildcard_.", "*.", 1)
		leaf := cached(name)
		if leaf == nil {
			b, err := storage.Load(ctx, k)
			if err != nil {
				continue
			}
			if leaf = parseLeaf(b); leaf == nil {
				continue
			}
		}
		kind := "on_demand"
		if managed[name] {
			kind = "managed"
		}
		out = append(out, servedCert{names: certNames(leaf), issuer: issuerName(leaf), notAfter: leaf.NotAfter,
			kind: kind, source: "storage " + k})
	}
	return out
}

func parseLeaf(b []byte) *x509.Certificate {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil
		}
		if blk.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil
			}
			return c
		}
	}
}

func certNames(c *x509.Certificate) []string {
	names := append([]string(nil), c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 && c.Subject.CommonName != "" {
		names = []string{c.Subject.CommonName}
	}
	return names
}

func issuerName(c *x509.Certificate) string {
	if c.Issuer.CommonName != "" {
		return c.Issuer.CommonName
	}
	return c.Issuer.String()
}
