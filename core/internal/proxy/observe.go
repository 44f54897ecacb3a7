package proxy

import (
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"time"

	"github.com/sluicegw/sluice/core/internal/model"
)

// Observer is told about every request the Handler finished, for metrics.
// ObserveRequest is called on the request's goroutine after the response
// was written (or the client left); it must be safe for concurrent use,
// must not block, and must not keep the Exchange's pointers beyond the
// snapshot they belong to.
type Observer interface {
	ObserveRequest(Exchange)
}

// Exchange is what an Observer learns about one request. It is passed by
// value so that observing allocates nothing.
type Exchange struct {
	// Route is the rule that matched; nil for the default backend or when
	// nothing matched. Host is its VirtualHost name ("" for host-less
	// rules).
	Route *model.Route
	Host  string
	// Backend is nil when no route (and no default backend) matched or no
	// configuration is loaded.
	Backend *model.Backend
	Method  string
	// Status is the status sent to the client; 499 when it left first.
	Status   int
	Duration time.Duration
	// Upstream is the time from sending the request upstream to its
	// response headers; 0 when no response came.
	Upstream time.Duration
	// UpstreamError is "" or why the upstream gave no answer: "unreachable"
	// (502), "timeout" (504), "no_endpoints" (503).
	UpstreamError string
}

// Upstream error kinds of Exchange.UpstreamError.
const (
	UpstreamUnreachable = "unreachable"
	UpstreamTimeout     = "timeout"
	UpstreamNoEndpoints = "no_endpoints"
)

// RequestIDHeader carries the request id upstream.
const RequestIDHeader = "X-Request-Id"

// maxRequestID bounds a kept incoming id; a longer one is replaced.
const maxRequestID = 128

// requestID returns the request's id and sets it on r: the incoming
// X-Request-Id when the peer is trusted and the value is sane, else a new
// one. Every other peer's id is replaced, so clients cannot choose the id
// an operator searches the logs for.
func (h *Handler) requestID(r *http.Request) string {
	if len(h.opts.RequestIDTrusted) > 0 {
		if v := r.Header[RequestIDHeader]; len(v) == 1 && validRequestID(v[0]) {
			if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil && containsAddr(h.opts.RequestIDTrusted, ap.Addr().Unmap()) {
				return v[0]
			}
		}
	}
	id := newRequestID()
	r.Header[RequestIDHeader] = []string{id}
	return id
}

func containsAddr(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// validRequestID accepts 1..128 visible ASCII characters.
func validRequestID(s string) bool {
	if s == "" || len(s) > maxRequestID {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// newRequestID is 16 random bytes in hex. math/rand/v2's top-level source
// is the runtime's per-thread ChaCha8 generator: unpredictable enough for
// an id, lock-free, and far cheaper than crypto/rand per call.
func newRequestID() string {
	var b [16]byte
	var out [32]byte
	u, v := rand.Uint64(), rand.Uint64()
	for i := range 8 {
		b[i], b[8+i] = byte(u>>(8*i)), byte(v>>(8*i))
	}
	hex.Encode(out[:], b[:])
	return string(out[:])
}

// upstreamResponded is the ReverseProxy's ModifyResponse: it notes when the
// response headers came.
func (h *Handler) upstreamResponded(resp *http.Response) error {
	if st, ok := resp.Request.Context().Value(stateKey{}).(*reqState); ok && !st.upStart.IsZero() {
		st.upDur = time.Since(st.upStart)
	}
	return nil
}

// observe reports the finished request to the Observer.
func (h *Handler) observe(r *http.Request, status int, d time.Duration, st *reqState) {
	e := Exchange{Method: r.Method, Status: status, Duration: d}
	if st != nil {
		e.Route, e.Backend = st.res.Route, st.res.Backend
		if e.Route != nil {
			e.Host = st.res.Host
		}
		e.Upstream, e.UpstreamError = st.upDur, st.upErr
	}
	h.opts.Observer.ObserveRequest(e)
}
