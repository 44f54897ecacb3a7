package core

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/sluicegw/sluice/core/internal/config"
	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/plugins"
)

// Native plugin filters: the config's plugins section names processes that
// a plugins.Manager runs; a route's sluice.io/filters entry without a module
// whose name is a plugin resolves to it (config validation refuses a name
// that is both a filter and a plugin, so the lookup order cannot matter).
//
// Only the control loop calls these.

// middleware is one entry of a route's chain: a wasm filter or a plugin.
type middleware interface {
	Middleware(next http.Handler) http.Handler
}

// chain wraps next in ms, the first outermost (it sees the request first).
func chain(next http.Handler, ms ...middleware) http.Handler {
	for i := len(ms) - 1; i >= 0; i-- {
		next = ms[i].Middleware(next)
	}
	return next
}

// syncPlugins makes the running plugins those of cfg: new ones start,
// changed ones (spec or binary checksum) restart, removed ones are killed.
// A plugin that does not come up is logged; it keeps being retried with
// backoff and its routes follow its failure policy meanwhile.
func (g *Gateway) syncPlugins(ctx context.Context, cfg *config.Config) {
	if g.plugins == nil {
		if len(cfg.Plugins) == 0 {
			return
		}
		g.plugins = plugins.NewManager(plugins.Options{Logger: g.log})
	}
	specs, errs := g.pluginSpecs(cfg)
	errs = append(errs, g.plugins.Sync(ctx, specs)...)
	for _, err := range errs {
		g.log.Error("plugin not running; its routes follow its failure policy while it is retried", "error", err)
	}
}

// closePlugins kills every plugin process, at shutdown.
func (g *Gateway) closePlugins() {
	if g.plugins != nil {
		g.plugins.Close()
	}
}

func (g *Gateway) pluginSpecs(cfg *config.Config) ([]plugins.Spec, []error) {
	names := make([]string, 0, len(cfg.Plugins))
	for n := range cfg.Plugins {
		names = append(names, n)
	}
	sort.Strings(names)
	var specs []plugins.Spec
	var errs []error
	for _, n := range names {
		p := cfg.Plugins[n]
		fail, err := plugins.ParseFailPolicy(p.Fail)
		if err != nil {
			errs = append(errs, fmt.Errorf("config key plugins.%s.fail: %w", n, err))
			continue
		}
		var conf []byte
		if p.Config != nil {
			if conf, err = json.Marshal(p.Config); err != nil {
				errs = append(errs, fmt.Errorf("config key plugins.%s.config: %w", n, err))
				continue
			}
		}
		env := make([]string, 0, len(p.Env))
		for k, v := range p.Env {
			env = append(env, k+"="+v)
		}
		sort.Strings(env)
		cmd := p.Command
		// A path is relative to the config file; a bare name is looked up
		// in PATH.
		if strings.ContainsRune(cmd, '/') && !filepath.IsAbs(cmd) && g.opts.ConfigFile != "" {
			cmd = filepath.Join(filepath.Dir(g.opts.ConfigFile), cmd)
		}
		specs = append(specs, plugins.Spec{
			Name: n, Command: cmd, Args: p.Args, Env: env, Config: conf,
			Fail: fail, Timeout: p.Timeout, MaxConcurrent: p.MaxConcurrent,
		})
	}
	return specs, errs
}

// pluginFilter resolves ref when it names a plugin (ok), with the route's
// config and, if the entry sets one, its own failure policy.
func (g *Gateway) pluginFilter(cfg *config.Config, ref model.FilterRef) (m middleware, ok bool, err error) {
	if ref.Module != "" {
		return nil, false, nil
	}
	if _, ok := cfg.Plugins[ref.Name]; !ok {
		return nil, false, nil
	}
	var fail *plugins.FailPolicy
	if ref.Fail != "" {
		p, err := plugins.ParseFailPolicy(ref.Fail)
		if err != nil {
			return nil, true, err
		}
		fail = &p
	}
	if g.checkOnly {
		return checkPlugin(g, cfg, ref.Name)
	}
	if g.plugins == nil {
		return nil, true, fmt.Errorf("plugin %s: the plugin manager is not running", ref.Name)
	}
	f, err := g.plugins.Filter(ref.Name, ref.Config, fail)
	if err != nil {
		return nil, true, err
	}
	return f, true, nil
}

// checkPlugin is pluginFilter for `sluice check`: the plugin is not
// started; its spec must be valid and its command an executable file.
func checkPlugin(g *Gateway, cfg *config.Config, name string) (middleware, bool, error) {
	specs, errs := g.pluginSpecs(cfg)
	for _, err := range errs {
		if strings.HasPrefix(err.Error(), "config key plugins."+name+".") {
			return nil, true, err
		}
	}
	for _, s := range specs {
		if s.Name != name {
			continue
		}
		if _, err := exec.LookPath(s.Command); err != nil {
			return nil, true, fmt.Errorf("plugin %s: config key plugins.%s.command: %w", name, name, err)
		}
	}
	return nopMiddleware{}, true, nil
}

type nopMiddleware struct{}

func (nopMiddleware) Middleware(next http.Handler) http.Handler { return next }

// Interface guards.
var (
	_ middleware = (*plugins.RouteFilter)(nil)
	_ middleware = nopMiddleware{}
)
