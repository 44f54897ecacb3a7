// Package core is the gateway: it loads the configuration, reads the route
// sources, translates them into a snapshot, and serves it.
//
// The pipeline (DESIGN.md): sources → translate (pure) → Snapshot →
// compile → atomic swap. One goroutine, the control loop in Run, owns every
// rebuild; a build that fails never replaces the one being served.
package core

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"

	"github.com/sluicegw/sluice/core/internal/certstore"
	"github.com/sluicegw/sluice/core/internal/config"
	"github.com/sluicegw/sluice/core/internal/kube"
	"github.com/sluicegw/sluice/core/internal/manifest"
	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/core/internal/proxy"
	"github.com/sluicegw/sluice/core/internal/route"
	"github.com/sluicegw/sluice/core/internal/tlsmgr"
	"github.com/sluicegw/sluice/core/internal/translate"
	"github.com/sluicegw/sluice/core/internal/upstream"
	"github.com/sluicegw/sluice/core/internal/watch"
	builtins "github.com/sluicegw/sluice/filters"
	"github.com/sluicegw/sluice/plugins"
)

// Options say where the configuration comes from. See config.Sources.
type Options struct {
	ConfigFile string
	Env        []string
	Flags      *pflag.FlagSet
	// LogOutput receives the process log and the access log; nil means
	// io.Discard.
	LogOutput io.Writer
}

// HoldOff is how long the watchers wait for a burst of file changes to end
// before one rebuild.
const HoldOff = 100 * time.Millisecond

// Gateway serves the routes of its sources. Create it with New, then Run.
type Gateway struct {
	opts     Options
	cfg      *config.Config    // the config Run started with; reloads go to live
	cfgSum   [sha256.Size]byte // digest of the config file New read
	logLevel slog.LevelVar
	log      *slog.Logger

	pools   *upstream.Set
	proxy   *proxy.Handler
	filters filters          // filters.go; owned by the control loop
	plugins *plugins.Manager // plugins.go; nil until a plugin is configured

	tls tlsGlue // tls.go
	obs obsGlue // metrics.go, admin.go

	kube *kube.Source // kube.go; nil in standalone mode

	live     atomic.Pointer[state] // nil until the first build succeeds
	draining atomic.Bool

	// checkOnly is set by `sluice check`: filters are loaded, plugins
	// are checked but never started.
	checkOnly bool
}

// state is what the gateway serves; immutable once stored.
type state struct {
	chains   *chains // the filters this state uses
	cfg      *config.Config
	snap     *model.Snapshot
	table    *route.Table
	certs    *certstore.Store
	policies *tlsmgr.Policies // per-host TLS: mTLS, redirect, HSTS
	warnings []model.Warning
	// translated is how many of warnings came from the source and
	// translate; the rest came from building (certificates, TLS, filters).
	translated int
	built      time.Time
}

// New loads and validates the configuration. It starts nothing and opens no
// port: that is Run's job.
func New(opts Options) (*Gateway, error) {
	cfg, err := config.Load(config.Sources{File: opts.ConfigFile, Env: opts.Env, Flags: opts.Flags})
	if err != nil {
		return nil, err
	}
	if cfg.Manifests == "" && !cfg.ClusterMode() {
		return nil, errors.New("no route source: pass --manifests DIR (standalone mode) or --kubeconfig FILE | --in-cluster (cluster mode), or set the config key manifests, kubeconfig or in_cluster")
	}
	out := opts.LogOutput
	if out == nil {
		out = io.Discard
	}
	g := &Gateway{opts: opts, cfg: cfg}
	if opts.ConfigFile != "" {
		if b, err := os.ReadFile(opts.ConfigFile); err == nil {
			g.cfgSum = sha256.Sum256(b)
		}
	}
	g.logLevel.Set(parseLevel(cfg.Log.Level))
	hopts := &slog.HandlerOptions{Level: &g.logLevel}
	if cfg.Log.Format == "json" {
		g.log = slog.New(slog.NewJSONHandler(out, hopts))
	} else {
		g.log = slog.New(slog.NewTextHandler(out, hopts))
	}
	if cfg.ClusterMode() {
		if g.kube, err = newKubeSource(cfg, g.log); err != nil {
			return nil, err
		}
	}
	g.pools = upstream.NewSet(upstream.Options{})
	g.initObservability(cfg) // metrics.go
	g.proxy = proxy.New(proxy.Options{Logger: g.log, AccessLog: cfg.Log.Access,
		AccessLogger: accessLogger(cfg, g), AccessFields: cfg.Log.AccessFields,
		RequestIDTrusted: cfg.RequestID.TrustedRequestIDPeers(), Observer: g.obs.metrics,
		TrustedProxies: cfg.Proxy.TrustedPeers()})
	if err := g.initTLS(cfg); err != nil {
		return nil, err
	}
	return g, nil
}

func parseLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo // Validate has refused anything else
	}
	return l
}

// translateOptions derives translation options from the configuration.
func translateOptions(cfg *config.Config) translate.Options {
	return translate.Options{
		ControllerName: translate.ControllerName,
		ClassNames:     []string{cfg.IngressClass},
		// Standalone mode: the manifests' EndpointSlices name local
		// backends, which the API server would refuse.
		AllowLoopback: cfg.Manifests != "",
		KnownFilters: func(name string) bool {
			_, ok := cfg.Filters[name]
			_, plugin := cfg.Plugins[name]
			_, builtin := builtins.Module(name) // built-in filters (issue 5)
			return ok || plugin || builtin
		},
		TrustedProxies: cfg.Proxy.TrustedPeers(), // for the annotations' rate limits
		MaxBodyBytes:   cfg.Proxy.MaxBodyBytes(),
		Balancer:       model.Balancer(cfg.Upstream.Balancer),
		Timeouts: model.Timeouts{
			Connect:  cfg.Upstream.ConnectTimeout,
			Response: cfg.Upstream.ResponseTimeout,
		},
	}
}

// build turns config and objects into a state without touching what is
// served. Object problems are warnings; the error is for a build that must
// not be served at all.
func (g *Gateway) build(cfg *config.Config, in translate.Input, sourceWarnings []model.Warning) (*state, error) {
	snap, warnings := translate.Translate(in, translateOptions(cfg))
	warnings = append(append([]model.Warning(nil), sourceWarnings...), warnings...)
	if st := g.endpointsOnly(cfg, snap, warnings); st != nil {
		return st, nil // kube.go: the EndpointSlice fast path
	}
	translated := len(warnings)
	certs, certErrs := certstore.Build(staticCertificates(cfg, snap))
	for _, err := range certErrs {
		warnings = append(warnings, model.Warning{Object: model.ObjectRef{Kind: "Certificate"}, Message: err.Error()})
	}
	policies, tw := g.tlsPolicies(cfg, snap)
	warnings = append(warnings, tw...)
	ch, fw := g.buildChains(cfg, snap)
	warnings = append(warnings, fw...)
	table, err := route.CompileWithChains(snap, g.pools.Sync(snap), ch.handlers)
	if err != nil {
		g.dropChains(ch)
		return nil, fmt.Errorf("compile routes: %w", err)
	}
	return &state{cfg: cfg, snap: snap, table: table, certs: certs, policies: policies, warnings: warnings, translated: translated, built: time.Now(), chains: ch}, nil
}

// apply makes st the served state and logs its warnings.
func (g *Gateway) apply(st *state) {
	g.proxy.Swap(st.table)
	g.live.Store(st)
	g.tls.mgr.Update(tlsView(st))
	g.commitChains(st.chains)
	if g.kube != nil {
		g.kube.Report(st.warnings) // Warning Events, each new warning once
	}
	for _, w := range st.warnings {
		g.log.Warn("invalid object", "object", w.Object.String(), "problem", w.Message)
	}
	routes := 0
	for _, vh := range st.snap.Hosts {
		routes += len(vh.Routes)
	}
	g.log.Info("configuration applied", "hosts", len(st.snap.Hosts), "routes", routes, "certificates", len(st.snap.Certificates), "warnings", len(st.warnings))
}

// Source delivers the objects to translate: the full current set every
// time it changes, the current state first (once it is complete, e.g. after
// informer caches synced). It calls onChange from one goroutine at a time,
// blocks until ctx is done, and returns nil then; any other return is an
// error that stops the gateway.
type Source func(ctx context.Context, onChange func(translate.Input, []model.Warning)) error

// source picks the route source the configuration names.
func (g *Gateway) source(cfg *config.Config) Source {
	if g.kube != nil {
		return g.kubeSource() // kube.go
	}
	return func(ctx context.Context, onChange func(translate.Input, []model.Warning)) error {
		return manifest.Watch(ctx, cfg.Manifests, HoldOff, onChange)
	}
}

// Run serves until ctx is done, then shuts down gracefully: it stops
// accepting, reports not-ready, and waits up to server.shutdown_timeout for
// requests in flight. It opens no port before the source has delivered its
// first complete state and that state is built. It returns an error when a
// listener cannot start, the source fails or the first build fails.
func (g *Gateway) Run(ctx context.Context) error {
	cfg := g.cfg
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var wg sync.WaitGroup
	defer wg.Wait()
	// Only the first error matters; later ones must not block their sender.
	errc := make(chan error, 1)
	report := func(err error) {
		select {
		case errc <- err:
		default:
		}
	}
	inputs := make(chan sourceUpdate, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := g.source(cfg)(ctx, func(in translate.Input, w []model.Warning) {
			replace(inputs, sourceUpdate{in, w})
		})
		if err != nil {
			report(fmt.Errorf("route source: %w", err))
		}
	}()

	// The first state: nothing listens before it is built.
	var first sourceUpdate
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		return err
	case first = <-inputs:
	}
	in, srcWarnings := first.in, first.warnings
	g.syncPlugins(ctx, cfg) // plugins.go: before the first build uses them
	defer g.closePlugins()  // last: after the listeners drained
	start := time.Now()
	st, err := g.build(cfg, in, srcWarnings)
	g.observeBuild(st, time.Since(start), err) // metrics.go
	if err != nil {
		return err
	}
	g.apply(st)
	defer g.closeFilters() // after shutdown: requests in flight still use them

	ls, err := g.listen(cfg)
	if err != nil {
		return err
	}
	defer g.tls.mgr.Close()
	if err := g.startTLS(ctx, ls); err != nil {
		g.closeListeners(ls)
		return err
	}
	for _, l := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				report(fmt.Errorf("%s listener %s: %w", l.name, l.addr, err))
			}
		}()
	}

	reloads := make(chan struct{}, 1)
	if g.opts.ConfigFile != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := filepath.Base(g.opts.ConfigFile)
			last := g.cfgSum
			err := watch.Dir(ctx, filepath.Dir(g.opts.ConfigFile), func(n string) bool { return n == name }, HoldOff, func() error {
				b, err := os.ReadFile(g.opts.ConfigFile)
				if sum := sha256.Sum256(b); err == nil && sum == last {
					return nil // touched, or unchanged since New read it
				} else {
					last = sum
				}
				replace(reloads, struct{}{}) // a read error is reported by the reload
				return nil
			})
			if err != nil {
				report(fmt.Errorf("watch config: %w", err))
			}
		}()
	}

	// The control loop: every rebuild happens here, one at a time.
	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-errc:
			runErr = err
			break loop
		case u := <-inputs:
			in, srcWarnings = u.in, u.warnings
			g.rebuild(g.live.Load().cfg, in, srcWarnings, "routes changed")
		case <-reloads:
			next, err := config.Load(config.Sources{File: g.opts.ConfigFile, Env: g.opts.Env, Flags: g.opts.Flags})
			if err != nil {
				g.log.Error("config reload rejected; still serving the previous config", "file", g.opts.ConfigFile, "error", err)
				continue
			}
			g.noteRestartOnly(g.live.Load().cfg, next)
			g.logLevel.Set(parseLevel(next.Log.Level))
			g.syncPlugins(ctx, next) // plugins.go
			g.rebuild(next, in, srcWarnings, "config changed")
		}
	}

	g.shutdown(ls)
	cancel()
	return runErr
}

type sourceUpdate struct {
	in       translate.Input
	warnings []model.Warning
}

// replace puts v in a one-slot channel, dropping a value not yet taken:
// only the newest state of a source matters.
func replace[T any](ch chan T, v T) {
	for {
		select {
		case ch <- v:
			return
		default:
			select {
			case <-ch:
			default:
			}
		}
	}
}

func (g *Gateway) rebuild(cfg *config.Config, in translate.Input, srcWarnings []model.Warning, why string) {
	start := time.Now()
	st, err := g.build(cfg, in, srcWarnings)
	g.observeBuild(st, time.Since(start), err) // metrics.go
	if err != nil {
		g.log.Error("rebuild failed; still serving the previous configuration", "reason", why, "error", err)
		return
	}
	g.log.Info("rebuilt", "reason", why)
	g.apply(st)
}

// noteRestartOnly logs the changed keys that a reload cannot apply.
func (g *Gateway) noteRestartOnly(old, next *config.Config) {
	for key, changed := range map[string]bool{
		"http_addr":  old.HTTPAddr != next.HTTPAddr,
		"https_addr": old.HTTPSAddr != next.HTTPSAddr,
		"admin_addr": old.AdminAddr != next.AdminAddr,
		"manifests":  old.Manifests != next.Manifests,
		"kubeconfig": old.Kubeconfig != next.Kubeconfig,
		"in_cluster": old.InCluster != next.InCluster,
		"kube":       old.Kube != next.Kube,
		"log.format": old.Log.Format != next.Log.Format,
		"log.access": old.Log.Access != next.Log.Access,
		// Observability keys (metrics.go).
		"log.access_format":          old.Log.AccessFormat != next.Log.AccessFormat,
		"log.access_fields":          !slices.Equal(old.Log.AccessFields, next.Log.AccessFields),
		"request_id.trusted_proxies": !slices.Equal(old.RequestID.TrustedProxies, next.RequestID.TrustedProxies),
		"proxy.trusted_proxies":      !slices.Equal(old.Proxy.TrustedProxies, next.Proxy.TrustedProxies),
		"admin":                      old.Admin != next.Admin,
		"server":                     old.Server != next.Server,
		"tls":                        tlsRestartOnly(old, next),
	} {
		if changed {
			g.log.Warn("config key changed but takes effect only after a restart", "key", key)
		}
	}
}

// Ready reports whether a configuration is being served and the gateway is
// not shutting down.
func (g *Gateway) Ready() bool { return g.live.Load() != nil && !g.draining.Load() }

func (g *Gateway) shutdown(ls []*listener) {
	g.draining.Store(true)
	timeout := g.cfg.Server.ShutdownTimeout
	g.log.Info("shutting down", "timeout", timeout)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, l := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.srv.Shutdown(ctx); err != nil {
				g.log.Warn("listener did not drain in time", "listener", l.name, "error", err)
				l.srv.Close()
			}
		}()
	}
	wg.Wait()
	g.log.Info("stopped")
}
