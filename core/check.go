package core

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sluicegw/sluice/core/internal/config"
	"github.com/sluicegw/sluice/core/internal/manifest"
	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/core/internal/proxy"
	"github.com/sluicegw/sluice/core/internal/route"
	"github.com/sluicegw/sluice/core/internal/translate"
	"github.com/sluicegw/sluice/core/internal/upstream"
)

// Check validates the configuration and the manifests the way Run would,
// prints the route table and every warning to w, and returns the number of
// warnings. It opens no port. The error is for what would stop Run.
func Check(w io.Writer, opts Options) (warnings int, err error) {
	cfg, err := config.Load(config.Sources{File: opts.ConfigFile, Env: opts.Env, Flags: opts.Flags})
	if err != nil {
		return 0, err
	}
	if cfg.Manifests == "" {
		return 0, errors.New("no route source: pass --manifests DIR or set the config key manifests")
	}
	in, srcWarnings, err := manifest.Load(cfg.Manifests)
	if err != nil {
		return 0, fmt.Errorf("manifests %s: %w", cfg.Manifests, err)
	}
	snap, ws := translate.Translate(in, translateOptions(cfg))
	ws = append(srcWarnings, ws...)
	if _, err := route.Compile(snap, upstream.NewSet(upstream.Options{}).Sync(snap)); err != nil {
		return 0, fmt.Errorf("compile routes: %w", err)
	}
	ws = append(ws, checkFilters(cfg, opts, snap)...)
	printSnapshot(w, snap, ws)
	return len(ws), nil
}

// checkFilters loads every filter the routes of snap use, as a build of Run
// would (module fetched, digest and exports checked, built-in configs
// validated), and checks that every plugin they name can be started: its
// failure policy parses and its command is an executable file. It starts
// no plugin and connects to no Redis; everything it loads is closed.
func checkFilters(cfg *config.Config, opts Options, snap *model.Snapshot) []model.Warning {
	chk := *cfg
	chk.RateLimit.Redis = config.Redis{}
	g := &Gateway{opts: opts, cfg: &chk, log: slog.New(slog.DiscardHandler), proxy: proxy.New(proxy.Options{}), checkOnly: true}
	defer g.closeFilters()
	c, ws := g.buildChains(&chk, snap)
	g.dropChains(c)
	return ws
}

func printSnapshot(w io.Writer, snap *model.Snapshot, warnings []model.Warning) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tPATH\tTYPE\tBACKEND\tENDPOINTS\tSOURCE\tPOLICY")
	for _, vh := range snap.Hosts {
		host := vh.Name
		if host == "" {
			host = "*"
		}
		if vh.TLS {
			host += " (tls)"
		}
		for _, r := range vh.Routes {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", host, r.Path, r.PathType, backendName(r.Backend), len(r.Backend.Endpoints), r.Source, routePolicy(r))
		}
	}
	if b := snap.DefaultBackend; b != nil {
		fmt.Fprintf(tw, "(default backend)\t\t\t%s\t%d\t\n", backendName(b), len(b.Endpoints))
	}
	tw.Flush()
	if len(snap.Certificates) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CERTIFICATE\tHOSTS\tNOT AFTER")
		for _, c := range snap.Certificates {
			fmt.Fprintf(tw, "%s\t%v\t%s\n", c.Source, c.Hosts, c.NotAfter.UTC().Format(time.RFC3339))
		}
		tw.Flush()
	}
	fmt.Fprintf(w, "\n%d warning(s)\n", len(warnings))
	for _, x := range warnings {
		fmt.Fprintln(w, "  "+x.String())
	}
}

// routePolicy summarises what a route does besides proxying (annotations
// and filters), "-" for nothing.
func routePolicy(r *model.Route) string {
	var p []string
	if r.Redirect != nil {
		p = append(p, fmt.Sprintf("redirect %d %s", r.Redirect.Code, r.Redirect.URL))
	}
	if r.AppRoot != "" {
		p = append(p, "app-root "+r.AppRoot)
	}
	if r.Rewrite != "" {
		p = append(p, "rewrite "+r.Rewrite)
	}
	if r.CORS != nil {
		p = append(p, "cors")
	}
	if c := r.Canary; c != nil {
		p = append(p, fmt.Sprintf("canary %s %d/%d", backendName(c.Backend), c.Weight, c.WeightTotal))
	}
	if t := r.Traffic; t != nil {
		if t.Protocol != "" {
			p = append(p, "protocol "+string(t.Protocol))
		}
		if t.MaxBodyBytes != 0 {
			p = append(p, fmt.Sprintf("max-body %d", t.MaxBodyBytes))
		}
		if len(t.AllowSources)+len(t.DenySources) > 0 {
			p = append(p, fmt.Sprintf("sources +%d/-%d", len(t.AllowSources), len(t.DenySources)))
		}
		if t.MaxConnsPerClient > 0 {
			p = append(p, fmt.Sprintf("limit-connections %d", t.MaxConnsPerClient))
		}
	}
	if len(r.Filters) > 0 {
		names := make([]string, len(r.Filters))
		for i, f := range r.Filters {
			names[i] = f.Name
		}
		p = append(p, "filters "+strings.Join(names, ","))
	}
	if r.FilterError != "" {
		p = append(p, "503: invalid filter chain")
	}
	if len(p) == 0 {
		return "-"
	}
	return strings.Join(p, "; ")
}

func backendName(b *model.Backend) string {
	if b == nil {
		return "-"
	}
	return b.Name
}
