package proxy

import (
	"log/slog"
	"net/http"
	"net/netip"
	"time"
)

// recorder counts the status and body bytes of a response for the access
// log. Flush, Hijack and the rest reach the real writer through Unwrap
// (http.ResponseController), which ReverseProxy uses.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// Flush is here because some code still type-asserts http.Flusher.
func (r *recorder) Flush() {
	_ = http.NewResponseController(r.ResponseWriter).Flush()
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// access writes one access log line; st is nil when no route was looked up.
func (h *Handler) access(r *http.Request, rec *recorder, start time.Time, st *reqState) {
	if rec == nil {
		return
	}
	ctx := r.Context()
	if !h.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	status := rec.status
	var routeHost, routePath, source, backend, endpoint string
	if st != nil {
		if st.status != 0 && status == 0 {
			status = st.status // the client left before an answer
		}
		if rt := st.res.Route; rt != nil {
			routeHost = st.res.Host
			routePath = string(rt.PathType) + " " + rt.Path
			source = rt.Source.String()
		} else if st.res.Backend != nil {
			routePath = "default backend"
		}
		if st.res.Backend != nil {
			backend = st.res.Backend.Name
		}
		if st.ep != nil {
			endpoint = st.ep.Addr()
		}
	}
	client := r.RemoteAddr
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		client = ap.Addr().Unmap().String()
	}
	h.log.LogAttrs(ctx, slog.LevelInfo, "access",
		slog.String("host", r.Host),
		slog.String("route_host", routeHost),
		slog.String("route", routePath),
		slog.String("ingress", source),
		slog.String("backend", backend),
		slog.String("upstream", endpoint),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.Int("status", status),
		slog.Int64("bytes", rec.bytes),
		slog.Duration("duration", time.Since(start)),
		slog.String("client", client),
	)
}
