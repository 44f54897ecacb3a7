package proxy

import (
	"net/http"
	"net/netip"
)

// applyRoute applies the matched route's ingress-nginx routing behaviour, in
// nginx's order: answers of the gateway itself first (a redirect, app-root,
// a CORS preflight), then the CORS headers of the response, the canary
// choice and the path rewrite. It returns the writer and request to go on
// with, or ok false when it has answered. It runs after the route's
// traffic policy admitted r and before the filter chain, so filters see
// the rewritten path and the canary backend. A route whose policy is
// invalid (FilterError) gets none of this: its chain answers 503, so a
// broken allowlist never lets a redirect or preflight through.
func (h *Handler) applyRoute(w http.ResponseWriter, r *http.Request, st *reqState) (http.ResponseWriter, *http.Request, bool) {
	rt := st.res.Route
	if rt == nil || rt.FilterError != "" {
		return w, r, true
	}
	if rt.Redirect != nil {
		redirect(w, r, rt.Redirect.Code, rt.Redirect.URL)
		return w, r, false
	}
	if rt.AppRoot != "" && st.res.Path == "/" {
		redirect(w, r, http.StatusFound, h.scheme(r)+"://"+r.Host+rt.AppRoot)
		return w, r, false
	}
	if rt.CORS != nil {
		var answered bool
		if w, answered = cors(w, r, rt.CORS); answered {
			return w, r, false
		}
	}
	if c := st.res.Canary; c != nil && c.Selected(r) {
		st.res.Backend, st.res.Pool = c.Backend(), c.Pool()
	}
	if rt.Rewrite != "" {
		r = rewritePath(r, st, rt.Rewrite)
	}
	return w, r, true
}

// scheme is the scheme the client used to reach the gateway: behind a
// trusted proxy its X-Forwarded-Proto ("http" or "https"), else that of
// the connection.
func (h *Handler) scheme(r *http.Request) string {
	if len(h.opts.TrustedProxies) > 0 {
		if v := r.Header.Get("X-Forwarded-Proto"); v == "http" || v == "https" {
			if peer, err := netip.ParseAddrPort(r.RemoteAddr); err == nil && h.trusted(peer.Addr().Unmap()) {
				return v
			}
		}
	}
	if r.TLS != nil {
		return "https"
	}
	return "http"
}
