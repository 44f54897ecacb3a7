package core

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sluicegw/sluice/core/internal/config"
	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/core/internal/redisstore"
	builtins "github.com/sluicegw/sluice/filters"
	"github.com/sluicegw/sluice/wasm"
)

// filterGrace is how long a filter that a new snapshot no longer uses stays
// open, so requests that matched the old table just before the swap still
// find it.
var filterGrace = 5 * time.Second

// filters owns the wasm host and the loaded filters. Only the control loop
// touches it.
type filters struct {
	host    *wasm.Host              // nil until a route first uses a filter
	redis   *redisstore.Store       // the host's Store when ratelimit.redis is set (issue 5)
	byKey   map[string]*wasm.Filter // the filters the served state uses
	retired []*wasm.Filter          // no longer served; closed after filterGrace
}

// chains is the filter part of one build: a handler per route that has a
// chain, and the filters it uses by key.
type chains struct {
	handlers map[*model.Route]http.Handler
	used     map[string]*wasm.Filter
	created  []*wasm.Filter   // loaded by this build (closed if it is dropped)
	failed   map[string]error // modules that failed to load in this build, by key
}

// buildChains loads (or reuses) the filters of every route of snap. A
// filter that cannot be loaded is a warning naming the Ingress and the
// entry, and its route answers 503 rather than run without it.
func (g *Gateway) buildChains(cfg *config.Config, snap *model.Snapshot) (*chains, []model.Warning) {
	out := &chains{handlers: map[*model.Route]http.Handler{}, used: map[string]*wasm.Filter{}, failed: map[string]error{}}
	var warnings []model.Warning
	seen := map[model.Warning]bool{}
	for _, vh := range snap.Hosts {
		for _, r := range vh.Routes {
			if r.FilterError != "" {
				out.handlers[r] = unavailable("the filter chain of this route is invalid")
				continue
			}
			if len(r.Filters) == 0 {
				continue
			}
			fs, err := g.routeFilters(cfg, r, out)
			if err != nil {
				// Every path of an Ingress shares its chain: warn once.
				w := model.Warning{Object: r.Source, Message: err.Error()}
				if !seen[w] {
					seen[w] = true
					warnings = append(warnings, w)
				}
				out.handlers[r] = unavailable("a filter of this route could not be loaded")
				continue
			}
			out.handlers[r] = withRoute(r.ID(vh.Name), chain(g.proxy.Forward(), fs...))
		}
	}
	return out, warnings
}

// withRoute tells the route's wasm filters which route they run for.
func withRoute(route string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(wasm.WithRoute(r.Context(), route)))
	})
}

func (g *Gateway) routeFilters(cfg *config.Config, r *model.Route, out *chains) ([]middleware, error) {
	fs := make([]middleware, 0, len(r.Filters))
	for i, ref := range r.Filters {
		// Native plugins (plugins.go): a name from the plugins section.
		if m, ok, err := g.pluginFilter(cfg, ref); ok {
			if err != nil {
				return nil, fmt.Errorf("metadata.annotations[%q][%d] (%s): %w", "sluice.io/filters", i, ref.Name, err)
			}
			fs = append(fs, g.observeFilter(ref.Name, m)) // metrics.go
			continue
		}
		spec, err := g.filterSpec(cfg, ref)
		if err != nil {
			return nil, fmt.Errorf("metadata.annotations[%q][%d] (%s): %w", "sluice.io/filters", i, ref.Name, err)
		}
		key := specKey(spec)
		f := out.used[key]
		if f == nil {
			f = g.filters.byKey[key]
		}
		if f == nil {
			// A module that failed once in this build fails for every
			// route that uses it: do not fetch and compile it again.
			if err := out.failed[key]; err != nil {
				return nil, fmt.Errorf("metadata.annotations[%q][%d] (%s): %w", "sluice.io/filters", i, ref.Name, err)
			}
			if f, err = g.loadFilter(cfg, spec); err != nil {
				out.failed[key] = err
				return nil, fmt.Errorf("metadata.annotations[%q][%d] (%s): %w", "sluice.io/filters", i, ref.Name, err)
			}
			out.created = append(out.created, f)
		}
		out.used[key] = f
		fs = append(fs, g.observeFilter(ref.Name, f)) // metrics.go
	}
	return fs, nil
}

func (g *Gateway) loadFilter(cfg *config.Config, spec wasm.FilterSpec) (*wasm.Filter, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if g.filters.host == nil {
		// Built-in filters (issue 5): with ratelimit.redis, buckets and
		// counters live in Redis, shared by the replicas. The store is
		// fixed for the host's life: a changed ratelimit.redis needs a
		// restart.
		store, err := newRedisStore(cfg.RateLimit.Redis, g.log)
		if err != nil {
			return nil, err
		}
		wc := wasm.Config{
			CacheDir:         cfg.Wasm.CacheDir,
			Timeout:          cfg.Wasm.Timeout,
			MemoryLimitPages: cfg.Wasm.MemoryLimitPages,
			Logger:           g.log,
		}
		if store != nil {
			wc.Store = store
		}
		wc.Store = g.observeStore(wc.Store) // metrics.go: rate-limit decisions
		h, err := wasm.NewHost(ctx, wc)
		if err != nil {
			if store != nil {
				store.Close()
			}
			return nil, fmt.Errorf("start the wasm host: %w", err)
		}
		g.filters.host, g.filters.redis = h, store
	}
	return g.filters.host.NewFilter(ctx, spec)
}

// filterSpec resolves an annotation entry: inline, or by name from the
// config file's filters section.
func (g *Gateway) filterSpec(cfg *config.Config, ref model.FilterRef) (wasm.FilterSpec, error) {
	spec := wasm.FilterSpec{Name: ref.Name, Config: ref.Config, Pool: wasm.PoolConfig{Min: 1}}
	module, sha, fail := ref.Module, ref.SHA256, ref.Fail
	if module == "" {
		named, ok := cfg.Filters[ref.Name]
		if _, builtin := builtins.Module(ref.Name); !ok && builtin {
			// A built-in by name (issue 5): a config-file name wins.
			module, ok = "builtin:"+ref.Name, true
			named.Module = module
		}
		if !ok {
			return spec, fmt.Errorf("no filter %q in the config file's filters or plugins section", ref.Name)
		}
		module, sha = named.Module, named.SHA256
		if fail == "" {
			fail = named.Fail
		}
		if spec.Config == nil && named.Config != nil {
			b, err := json.Marshal(named.Config)
			if err != nil {
				return spec, fmt.Errorf("config key filters.%s.config: %w", ref.Name, err)
			}
			spec.Config = b
		}
		spec.Pool = wasm.PoolConfig{Min: named.Pool.MinOrDefault(), Max: named.Pool.Max}
		spec.Timeout = named.Timeout
		if !strings.Contains(module, "://") && !strings.HasPrefix(module, "builtin:") && !filepath.IsAbs(module) {
			module = filepath.Join(filepath.Dir(g.opts.ConfigFile), module)
		}
	}
	switch {
	case strings.HasPrefix(module, "https://"):
		spec.Module = wasm.Source{URL: module, SHA256: sha}
	case strings.HasPrefix(module, "builtin:"):
		// Built-in filters (issue 5): the embedded module; its config is
		// checked here so that a bad one refuses the route at load.
		name := strings.TrimPrefix(module, "builtin:")
		b, ok := builtins.Module(name)
		if !ok {
			return spec, fmt.Errorf("module %q: no such built-in filter (built-ins: %s)", module, strings.Join(builtins.Names(), ", "))
		}
		if err := builtins.Validate(name, spec.Config); err != nil {
			return spec, fmt.Errorf("built-in filter %s: %w", name, err)
		}
		spec.Module = wasm.Source{Bytes: b, SHA256: sha}
		spec.Env = builtins.Env(name) // one module for all built-ins: which one to run
	default:
		spec.Module = wasm.Source{Path: strings.TrimPrefix(module, "file://"), SHA256: sha}
	}
	p, err := wasm.ParseFailPolicy(fail)
	if err != nil {
		return spec, err
	}
	spec.Fail = p
	return spec, nil
}

// specKey identifies a filter: routes whose entries resolve to the same
// module, config and limits share one filter and its pool.
func specKey(s wasm.FilterSpec) string {
	b, _ := json.Marshal(struct {
		Name, Module, SHA256 string
		Config               string
		Fail                 wasm.FailPolicy
		Pool                 wasm.PoolConfig
		Timeout              time.Duration
		Env                  map[string]string // the built-in to run: their module is shared
	}{s.Name, s.Module.String(), s.Module.SHA256, string(s.Config), s.Fail, s.Pool, s.Timeout, s.Env})
	return string(b)
}

// commitChains makes c the live filter set: filters the new state no
// longer uses are closed after filterGrace.
func (g *Gateway) commitChains(c *chains) {
	pending := g.filters.retired[:0]
	for _, f := range g.filters.retired {
		select {
		case <-f.Drained(): // closed and released: forget it
		default:
			pending = append(pending, f)
		}
	}
	g.filters.retired = pending
	for key, f := range g.filters.byKey {
		if _, ok := c.used[key]; !ok {
			// Close is idempotent: closeFilters may close it first.
			time.AfterFunc(filterGrace, f.Close)
			g.filters.retired = append(g.filters.retired, f)
		}
	}
	g.filters.byKey = c.used
}

// dropChains releases what a build that will not be served loaded.
func (g *Gateway) dropChains(c *chains) {
	for _, f := range c.created {
		f.Close()
	}
}

// closeFilters closes every filter and the host, at shutdown.
func (g *Gateway) closeFilters() {
	for _, f := range g.filters.byKey {
		f.Close()
	}
	for _, f := range g.filters.retired {
		f.Close()
	}
	g.filters.byKey, g.filters.retired = nil, nil
	if g.filters.host != nil {
		g.filters.host.Close(context.Background())
		g.filters.host = nil
	}
	if g.filters.redis != nil {
		g.filters.redis.Close()
		g.filters.redis = nil
	}
}

// newRedisStore is the Redis store of ratelimit.redis, nil when it is not
// configured (issue 5).
func newRedisStore(r config.Redis, log *slog.Logger) (*redisstore.Store, error) {
	if r.Address == "" {
		return nil, nil
	}
	password, err := r.Password()
	if err != nil {
		return nil, err
	}
	opts := redisstore.Options{Addr: r.Address, Username: r.Username, Password: password, DB: r.DB,
		Timeout: r.Timeout, LogInterval: r.LogInterval, Logger: log}
	if r.TLS {
		host, _, _ := net.SplitHostPort(r.Address)
		opts.TLS = &tls.Config{ServerName: cmp.Or(r.ServerName, host), MinVersion: tls.VersionTLS12}
		if r.CAFile != "" {
			pem, err := os.ReadFile(r.CAFile)
			if err != nil {
				return nil, fmt.Errorf("config key ratelimit.redis.ca_file: %w", err)
			}
			opts.TLS.RootCAs = x509.NewCertPool()
			if !opts.TLS.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("config key ratelimit.redis.ca_file: %s holds no PEM certificate", r.CAFile)
			}
		}
	}
	s, err := redisstore.New(opts)
	if err != nil {
		return nil, fmt.Errorf("config key ratelimit.redis: %w", err)
	}
	return s, nil
}

// unavailable answers 503 with msg: a route whose filters cannot run.
func unavailable(msg string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "sluice: "+msg)
	})
}
