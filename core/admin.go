package core

import (
	"net/http"
	"time"

	"github.com/sluicegw/sluice/core/internal/admin"
	"github.com/sluicegw/sluice/core/internal/model"
)

// adminHandler is the admin API, dashboard, /metrics and (opt-in)
// /debug/pprof, mounted on the admin listener beside the health endpoints.
func (g *Gateway) adminHandler() http.Handler {
	v := adminViews{g}
	opts := admin.Options{
		Token: g.cfg.Admin.Token, PProf: g.cfg.Admin.PProf,
		Routes: v, Certs: v, Filters: v, Warnings: v,
	}
	if g.obs.metrics != nil {
		opts.Metrics = g.obs.metrics.Handler()
	}
	return admin.Handler(opts)
}

// adminViews reads the served state for the admin API.
type adminViews struct{ g *Gateway }

var (
	_ admin.RouteLister       = adminViews{}
	_ admin.CertificateLister = adminViews{}
	_ admin.FilterLister      = adminViews{}
	_ admin.WarningLister     = adminViews{}
)

func (v adminViews) backend(b *model.Backend) admin.Backend {
	out := admin.Backend{Name: b.Name, Protocol: string(b.Protocol), Balancer: string(b.Balancer), Endpoints: []admin.Endpoint{}}
	if p := v.g.pools.Get(b.Name); p != nil {
		now := time.Now()
		for _, e := range p.Stats() {
			out.Endpoints = append(out.Endpoints, admin.Endpoint{Address: e.Addr, InFlight: e.InFlight,
				Requests: e.Requests, Failures: e.Failures, Ejected: e.EjectedUntil.After(now)})
		}
		return out
	}
	for _, a := range b.Endpoints {
		out.Endpoints = append(out.Endpoints, admin.Endpoint{Address: a})
	}
	return out
}

func (v adminViews) Routes() admin.RouteTable {
	st := v.g.live.Load()
	t := admin.RouteTable{Routes: []admin.Route{}}
	if st == nil {
		return t
	}
	for _, vh := range st.snap.Hosts {
		host := vh.Name
		if host == "" {
			host = "*"
		}
		for _, r := range vh.Routes {
			ar := admin.Route{Host: host, Path: r.Path, PathType: string(r.PathType), Source: r.Source.String(),
				TLS: vh.TLS, Backend: v.backend(r.Backend), Filters: []string{}, FilterError: r.FilterError}
			for _, f := range r.Filters {
				ar.Filters = append(ar.Filters, f.Name)
			}
			t.Routes = append(t.Routes, ar)
		}
	}
	if b := st.snap.DefaultBackend; b != nil {
		ab := v.backend(b)
		t.DefaultBackend = &ab
	}
	return t
}

func (v adminViews) Certificates() []admin.Certificate {
	var out []admin.Certificate
	for _, c := range v.g.servedCertificates() {
		out = append(out, admin.Certificate{Names: c.names, Issuer: c.issuer, NotAfter: c.notAfter, Kind: c.kind, Source: c.source})
	}
	return out
}

func (v adminViews) Filters() []admin.Filter {
	var out []admin.Filter
	for _, f := range v.g.loadedFilters() {
		af := admin.Filter{Name: f.name, Kind: f.kind, Module: f.module, Digest: f.digest}
		if f.wasm != nil {
			s := f.wasm.Stats()
			af.Pool = &admin.Pool{Size: s.Pool.Size, InUse: s.Pool.InUse, Idle: s.Pool.Idle, Waiting: s.Pool.Waiting,
				Instantiations: s.Pool.Instantiations, CreateErrors: s.Pool.CreateErrors}
			af.Calls = s.Requests
			af.Outcomes = map[string]uint64{"trap": s.Traps, "timeout": s.Deadlines, "memory_limit": s.MemoryCaps,
				"busy": s.Busy, "failed_open": s.FailedOpen, "failed_closed": s.FailedShut}
			af.Failures = s.Traps + s.Deadlines + s.MemoryCaps + s.Busy
		} else {
			p := f.plugin
			af.Calls = p.Requests
			af.Outcomes = map[string]uint64{"answer": p.Replies, "trap": p.Errors, "timeout": p.Timeouts,
				"busy": p.Unavailable, "failed_open": p.FailedOpen, "failed_closed": p.FailedShut, "restarts": p.Restarts}
			af.Failures = p.Errors + p.Timeouts + p.Unavailable
		}
		out = append(out, af)
	}
	return out
}

func (v adminViews) Warnings() admin.Warnings {
	st := v.g.live.Load()
	if st == nil {
		return admin.Warnings{}
	}
	v.g.obs.mu.Lock()
	defer v.g.obs.mu.Unlock()
	return admin.Warnings{Built: st.built, LastSuccess: v.g.obs.lastSuccess, LastError: v.g.obs.lastError,
		Warnings: append([]model.Warning(nil), st.warnings...)}
}
