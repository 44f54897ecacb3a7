package proxy

import (
	"log/slog"
	"net/http"
	"time"
)

// recorder counts the status and body bytes of a response for the access
// log. Flush, Hijack and the rest reach the real writer through Unwrap
// (http.ResponseController), which ReverseProxy uses.
type recorder struct {
	http.ResponseWriter
	status    int
	bytes     int64
	requestID string
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

// accessField is one field of the access log line (config.AccessFields).
type accessField uint8

const (
	fRequestID accessField = iota
	fClient
	fMethod
	fHost
	fPath
	fProto
	fStatus
	fBytes
	fDuration
	fUpstreamDuration
	fRouteHost
	fRoute
	fIngress
	fBackend
	fUpstream
	fUserAgent
	fReferer
	fTraceparent
	numAccessFields
)

var accessFieldNames = [numAccessFields]string{
	"request_id", "client", "method", "host", "path", "proto", "status", "bytes", "duration",
	"upstream_duration", "route_host", "route", "ingress", "backend", "upstream",
	"user_agent", "referer", "traceparent",
}

// defaultAccessFields is the line when Options.AccessFields is nil.
var defaultAccessFields = []string{
	"request_id", "client", "method", "host", "path", "status", "bytes", "duration",
	"route_host", "route", "ingress", "backend", "upstream",
}

// accessFields maps names to fields; unknown names are skipped (the config
// refuses them before they get here).
func accessFields(names []string) []accessField {
	if names == nil {
		names = defaultAccessFields
	}
	out := make([]accessField, 0, len(names))
	for _, n := range names {
		for i, fn := range accessFieldNames {
			if fn == n {
				out = append(out, accessField(i))
			}
		}
	}
	return out
}

// access reports the finished request to the Observer and writes its
// access log line; st is nil when no route was looked up.
func (h *Handler) access(r *http.Request, rec *recorder, start time.Time, st *reqState) {
	if rec == nil {
		return
	}
	d := time.Since(start)
	status := rec.status
	if st != nil && st.status != 0 && status == 0 {
		status = st.status // the client left before an answer
	}
	if h.opts.Observer != nil {
		h.observe(r, status, d, st)
	}
	if !h.opts.AccessLog {
		return
	}
	ctx := r.Context()
	if !h.alog.Enabled(ctx, slog.LevelInfo) {
		return
	}
	var attrs [numAccessFields]slog.Attr
	n := 0
	for _, f := range h.fields {
		attrs[n] = h.accessAttr(f, r, rec, status, d, st)
		n++
	}
	h.alog.LogAttrs(ctx, slog.LevelInfo, "access", attrs[:n]...)
}

func (h *Handler) accessAttr(f accessField, r *http.Request, rec *recorder, status int, d time.Duration, st *reqState) slog.Attr {
	name := accessFieldNames[f]
	switch f {
	case fRequestID:
		return slog.String(name, rec.requestID)
	case fClient:
		// The client as source ranges and rate limits see it: behind a
		// trusted proxy, from X-Forwarded-For (clientAddr).
		if a := h.clientAddr(r); a.IsValid() {
			return slog.String(name, a.String())
		}
		return slog.String(name, r.RemoteAddr)
	case fMethod:
		return slog.String(name, r.Method)
	case fHost:
		return slog.String(name, r.Host)
	case fPath:
		return slog.String(name, r.URL.Path)
	case fProto:
		return slog.String(name, r.Proto)
	case fStatus:
		return slog.Int(name, status)
	case fBytes:
		return slog.Int64(name, rec.bytes)
	case fDuration:
		return slog.Duration(name, d)
	case fUserAgent:
		return slog.String(name, r.Header.Get("User-Agent"))
	case fReferer:
		return slog.String(name, r.Header.Get("Referer"))
	case fTraceparent:
		return slog.String(name, r.Header.Get("Traceparent"))
	}
	var v string
	var up time.Duration
	if st != nil {
		up = st.upDur
		switch f {
		case fRouteHost:
			if st.res.Route != nil {
				v = st.res.Host
			}
		case fRoute:
			if rt := st.res.Route; rt != nil {
				v = string(rt.PathType) + " " + rt.Path
			} else if st.res.Backend != nil {
				v = "default backend"
			}
		case fIngress:
			if rt := st.res.Route; rt != nil {
				v = rt.Source.String()
			}
		case fBackend:
			if st.res.Backend != nil {
				v = st.res.Backend.Name
			}
		case fUpstream:
			if st.ep != nil {
				v = st.ep.Addr()
			}
		}
	}
	if f == fUpstreamDuration {
		return slog.Duration(name, up)
	}
	return slog.String(name, v)
}
