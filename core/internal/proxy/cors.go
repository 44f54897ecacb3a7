package proxy

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/sluicegw/sluice/core/internal/model"
)

// cors applies a route's CORS policy as ingress-nginx does. A request
// whose Origin is allowed (any request, for the origin "*") gets the
// Access-Control-* headers on its response, replacing the upstream's; an
// allowed OPTIONS request is a preflight and is answered here with 204
// (answered true). Requests from other origins pass unchanged but for
// "Vary: Origin" when the answer depends on the origin (caches must not
// serve a response without CORS headers to an allowed origin).
func cors(w http.ResponseWriter, r *http.Request, c *model.CORS) (http.ResponseWriter, bool) {
	allow, vary := corsAllowOrigin(c, r.Header.Get("Origin"))
	if allow == "" {
		if vary {
			return &corsWriter{ResponseWriter: w, set: addVaryOrigin}, false
		}
		return w, false
	}
	set := func(h http.Header) { setCORSHeaders(h, c, allow, vary) }
	if r.Method == http.MethodOptions {
		h := w.Header()
		set(h)
		// ingress-nginx also sends "Content-Length: 0"; a 204 must not
		// carry one (RFC 9110 section 8.6).
		h.Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusNoContent)
		return w, true
	}
	return &corsWriter{ResponseWriter: w, set: set}, false
}

// corsAllowOrigin returns the Access-Control-Allow-Origin value for a
// request from origin, "" when that origin is not allowed, and whether the
// answer depends on the origin (Vary: Origin).
func corsAllowOrigin(c *model.CORS, origin string) (allow string, vary bool) {
	if len(c.AllowOrigins) == 1 && c.AllowOrigins[0] == "*" {
		return "*", false
	}
	if origin == "" {
		return "", true
	}
	for _, o := range c.AllowOrigins {
		if originMatches(o, origin) {
			return origin, true
		}
	}
	return "", true
}

// originMatches compares an allowed origin ("https://a.example",
// "https://*.example:8443") with a request's Origin, without regard to
// case. "*." stands for exactly one DNS label.
func originMatches(allowed, origin string) bool {
	before, after, wild := strings.Cut(allowed, "*.")
	if !wild {
		return strings.EqualFold(allowed, origin)
	}
	if len(origin) < len(before)+len(after)+2 ||
		!strings.EqualFold(origin[:len(before)], before) ||
		!strings.EqualFold(origin[len(origin)-len(after):], after) {
		return false
	}
	label := origin[len(before) : len(origin)-len(after)-1]
	if origin[len(origin)-len(after)-1] != '.' {
		return false
	}
	for i := 0; i < len(label); i++ {
		c := label[i] | 0x20
		if !('a' <= c && c <= 'z' || '0' <= label[i] && label[i] <= '9' || label[i] == '-' || label[i] == '_') {
			return false
		}
	}
	return true
}

func setCORSHeaders(h http.Header, c *model.CORS, allow string, vary bool) {
	h.Set("Access-Control-Allow-Origin", allow)
	if c.AllowCredentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	} else {
		h.Del("Access-Control-Allow-Credentials")
	}
	h.Set("Access-Control-Allow-Methods", c.AllowMethods)
	h.Set("Access-Control-Allow-Headers", c.AllowHeaders)
	if c.ExposeHeaders != "" {
		h.Set("Access-Control-Expose-Headers", c.ExposeHeaders)
	}
	if c.MaxAge >= 0 {
		h.Set("Access-Control-Max-Age", strconv.Itoa(c.MaxAge))
	}
	if vary {
		addVaryOrigin(h)
	}
}

func addVaryOrigin(h http.Header) {
	if !hasToken(h.Values("Vary"), "Origin") {
		h.Add("Vary", "Origin")
	}
}

// hasToken reports whether one of the comma-separated lists vs holds tok.
func hasToken(vs []string, tok string) bool {
	for _, v := range vs {
		for t := range strings.SplitSeq(v, ",") {
			if t = strings.TrimSpace(t); t == "*" || strings.EqualFold(t, tok) {
				return true
			}
		}
	}
	return false
}

// corsWriter sets the CORS headers just before the response header is
// written, so they replace whatever the upstream or a filter sent.
// Flush, Hijack and the rest reach the real writer through Unwrap.
type corsWriter struct {
	http.ResponseWriter
	set  func(http.Header)
	done bool
}

func (cw *corsWriter) header() {
	if !cw.done {
		cw.done = true
		cw.set(cw.ResponseWriter.Header())
	}
}

func (cw *corsWriter) WriteHeader(code int) {
	if code >= 200 {
		cw.header()
	}
	cw.ResponseWriter.WriteHeader(code)
}

func (cw *corsWriter) Write(p []byte) (int, error) {
	cw.header()
	return cw.ResponseWriter.Write(p)
}

// Flush is here because some code still type-asserts http.Flusher.
func (cw *corsWriter) Flush() {
	cw.header()
	_ = http.NewResponseController(cw.ResponseWriter).Flush()
}

func (cw *corsWriter) Unwrap() http.ResponseWriter { return cw.ResponseWriter }
