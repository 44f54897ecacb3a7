package core

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/sluicegw/sluice/core/internal/admin"
	"github.com/sluicegw/sluice/core/internal/config"
)

// listener is one bound socket and the server that serves it.
type listener struct {
	name string // http | https | admin
	addr string // as bound, with the real port
	srv  *http.Server
	ln   net.Listener
	tls  bool
}

func (l *listener) serve() error {
	if l.tls {
		return l.srv.ServeTLS(l.ln, "", "")
	}
	return l.srv.Serve(l.ln)
}

// listen binds every configured listener before any serves, so a port that
// is taken fails Run at once with the key that names it.
func (g *Gateway) listen(cfg *config.Config) (ls []*listener, err error) {
	defer func() {
		if err != nil {
			g.closeListeners(ls)
			ls = nil
		}
	}()
	add := func(name, key, addr string, srv *http.Server, isTLS bool) error {
		if addr == "" {
			return nil
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("config key %s: %w", key, err)
		}
		l := &listener{name: name, addr: ln.Addr().String(), srv: srv, ln: ln, tls: isTLS}
		ls = append(ls, l)
		g.log.Info("listening", "listener", name, "addr", l.addr)
		return nil
	}
	if err := add("http", "http_addr", cfg.HTTPAddr, g.server(cfg, false), false); err != nil {
		return ls, err
	}
	if err := add("https", "https_addr", cfg.HTTPSAddr, g.server(cfg, true), true); err != nil {
		return ls, err
	}
	if err := add("admin", "admin_addr", cfg.AdminAddr, g.adminServer(), false); err != nil {
		return ls, err
	}
	return ls, nil
}

// closeListeners closes sockets bound by listen that serve nothing yet.
func (g *Gateway) closeListeners(ls []*listener) {
	for _, l := range ls {
		l.ln.Close()
	}
}

// server makes the HTTP or HTTPS server for the proxy.
//
// Why these timeouts: ReadHeaderTimeout stops slowloris; ReadTimeout and
// WriteTimeout stay 0 by default because they would cut long uploads,
// downloads, streams and websockets; IdleTimeout bounds idle keep-alive
// connections.
func (g *Gateway) server(cfg *config.Config, isTLS bool) *http.Server {
	srv := &http.Server{
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
		ReadTimeout:       cfg.Server.ReadTimeout,
		WriteTimeout:      cfg.Server.WriteTimeout,
		IdleTimeout:       cfg.Server.IdleTimeout,
		MaxHeaderBytes:    cfg.Server.MaxHeaderBytes,
		// Handshake failures and client resets are the client's business:
		// keep them at debug level.
		ErrorLog: slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
	}
	if isTLS {
		// GetCertificate (static, managed, on-demand certificates) and
		// GetConfigForClient (per-host mTLS): see tls.go.
		srv.TLSConfig = g.tls.base
		srv.Handler = g.secureHandler(g.proxy)
	} else {
		// ACME HTTP-01 answers and the redirect to HTTPS first.
		srv.Handler = g.plainHandler(g.proxy)
		// Cleartext HTTP/2 with prior knowledge, for clients that speak it.
		srv.Protocols = new(http.Protocols)
		srv.Protocols.SetHTTP1(true)
		srv.Protocols.SetUnencryptedHTTP2(true)
	}
	return srv
}

// adminServer serves the health endpoints. It listens on loopback by
// default (admin_addr).
func (g *Gateway) adminServer() *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /stats/tls", admin.Authorize(g.cfg.Admin.Token, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(g.tls.mgr.Stats())
	})))
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		switch {
		case g.draining.Load():
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "shutting down")
		case g.live.Load() == nil:
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "no configuration loaded yet")
		case g.Degraded() != "":
			// Still serving the last routes: stay in the load balancer.
			fmt.Fprintf(w, "ready (degraded: %s)\n", g.Degraded())
		default:
			fmt.Fprintln(w, "ready")
		}
	})
	// The admin API, dashboard, /metrics and /debug/pprof: admin.go.
	mux.Handle("/", g.adminHandler())
	return &http.Server{Handler: mux, ReadHeaderTimeout: g.cfg.Server.ReadHeaderTimeout}
}
