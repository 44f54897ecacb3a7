package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/core/internal/route"
	"github.com/sluicegw/sluice/core/internal/upstream"
)

// Options configure a Handler. The zero value is usable: no access log,
// no trusted proxies, default connection pooling.
type Options struct {
	// Logger receives the access log (at Info) and upstream errors (at
	// Warn). Nil discards both.
	Logger *slog.Logger
	// AccessLog turns on one Info line per request.
	AccessLog bool
	// TrustedProxies are the peers whose X-Forwarded-* and Forwarded
	// headers are kept and appended to. From any other peer they are
	// replaced, so clients cannot forge their address or scheme.
	TrustedProxies []netip.Prefix
	// MaxIdleConnsPerHost is the idle keep-alive connections kept per
	// endpoint. Zero means 64.
	MaxIdleConnsPerHost int
	// IdleConnTimeout closes idle upstream connections. Zero means 90s.
	IdleConnTimeout time.Duration

	// Observability (observe.go, accesslog.go).
	//
	// AccessLogger receives the access log instead of Logger when set.
	// AccessFields choose and order its fields (config.AccessFields); nil
	// means config.DefaultAccessFields.
	AccessLogger *slog.Logger
	AccessFields []string
	// RequestIDTrusted are the peers whose X-Request-Id is kept.
	RequestIDTrusted []netip.Prefix
	// Observer, when set, is told about every finished request.
	Observer Observer
}

// Handler is the reverse proxy. Swap and ServeHTTP are safe for concurrent
// use; ServeHTTP never blocks on Swap.
type Handler struct {
	opts   Options
	log    *slog.Logger
	table  atomic.Pointer[route.Table]
	http1  *http.Transport
	h2c    *http.Transport
	rp     *httputil.ReverseProxy
	closed atomic.Bool
	alog   *slog.Logger // access log
	fields []accessField

	// up and inflight: the routes' traffic policy (traffic.go).
	up       *upstreamTransports
	inflight inflight
}

var _ http.Handler = (*Handler)(nil)

// New returns a Handler that answers 503 until the first Swap. It starts
// nothing and opens no connection.
func New(opts Options) *Handler {
	if opts.MaxIdleConnsPerHost <= 0 {
		opts.MaxIdleConnsPerHost = 64
	}
	if opts.IdleConnTimeout <= 0 {
		opts.IdleConnTimeout = 90 * time.Second
	}
	h := &Handler{opts: opts, log: opts.Logger}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.alog, h.fields = h.log, accessFields(opts.AccessFields)
	if opts.AccessLogger != nil {
		h.alog = opts.AccessLogger
	}
	h.http1 = newTransport(opts, false)
	h.h2c = newTransport(opts, true)
	h.up = newUpstreamTransports(opts)
	h.rp = &httputil.ReverseProxy{
		Rewrite:        h.rewrite,
		Transport:      (*transport)(h),
		ErrorHandler:   h.proxyError,
		ModifyResponse: h.upstreamResponded, // observe.go
		ErrorLog:       slog.NewLogLogger(h.log.Handler(), slog.LevelWarn),
		BufferPool:     newBufPool(),
	}
	return h
}

func newTransport(opts Options, h2c bool) *http.Transport {
	t := &http.Transport{
		Proxy:                 nil, // never an environment proxy for upstreams
		DialContext:           dialUpstream,
		MaxIdleConnsPerHost:   opts.MaxIdleConnsPerHost,
		IdleConnTimeout:       opts.IdleConnTimeout,
		ExpectContinueTimeout: time.Second,
		// The client's Accept-Encoding passes through; the transport
		// must not add gzip and decompress behind the client's back.
		DisableCompression: true,
		Protocols:          new(http.Protocols),
	}
	if h2c {
		t.Protocols.SetUnencryptedHTTP2(true)
	} else {
		t.Protocols.SetHTTP1(true)
	}
	return t
}

// dialUpstream dials with the connect timeout of the request's backend.
// The transport passes a context that keeps the request's values.
func dialUpstream(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{KeepAlive: 30 * time.Second}
	if st, ok := ctx.Value(stateKey{}).(*reqState); ok {
		d.Timeout = st.connectTimeout()
	}
	return d.DialContext(ctx, network, addr)
}

// Swap makes t the table for requests that start from now on. Requests in
// flight finish with the table they started with. Swap(nil) unloads the
// configuration: requests get 503 again.
func (h *Handler) Swap(t *route.Table) { h.table.Store(t) }

// Table returns the current table, or nil before the first Swap.
func (h *Handler) Table() *route.Table { return h.table.Load() }

// Close closes idle upstream connections. It is safe to call more than
// once and on a Handler that never served; requests still in flight finish.
func (h *Handler) Close() error {
	if h.closed.Swap(true) {
		return nil
	}
	for _, t := range []*http.Transport{h.http1, h.h2c} {
		if t != nil { // a zero Handler has none
			t.CloseIdleConnections()
		}
	}
	h.up.closeIdle()
	return nil
}

type stateKey struct{}

// reqState travels in the request context from ServeHTTP to the rewrite,
// the transport, the dialer and the error handler.
type reqState struct {
	res    route.Result
	ep     *upstream.Endpoint
	cancel context.CancelCauseFunc // non-nil when a response timeout applies
	status int                     // set by the error handler
	// filtered: a filter chain ran; the request's path is the chain's.
	filtered bool
	// upStart, upDur, upErr: observe.go.
	upStart time.Time
	upDur   time.Duration
	upErr   string
}

var errResponseTimeout = errors.New("upstream response header timeout")

// ServeHTTP proxies r to the backend its route selects.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	stripIdentityHeaders(r.Header)
	id := h.requestID(r) // observe.go

	var rec *recorder
	if h.opts.AccessLog || h.opts.Observer != nil {
		rec = &recorder{ResponseWriter: w, requestID: id}
		w = rec
	}

	t := h.table.Load()
	if t == nil {
		plainError(w, http.StatusServiceUnavailable, "no configuration loaded yet")
		h.access(r, rec, start, nil)
		return
	}
	if r.Method == http.MethodConnect {
		plainError(w, http.StatusMethodNotAllowed, "CONNECT is not supported")
		h.access(r, rec, start, nil)
		return
	}
	st := &reqState{res: t.Match(r.Host, r.URL.Path)}
	if st.res.Backend == nil {
		plainError(w, http.StatusNotFound, "no route for this host and path")
		h.access(r, rec, start, st)
		return
	}
	defer func() { h.access(r, rec, start, st) }()
	release, ok := h.admit(w, r, st) // traffic.go
	if !ok {
		return
	}
	defer release()
	if w, r, ok = h.applyRoute(w, r, st); !ok { // routing.go
		return
	}
	ctx := context.WithValue(r.Context(), stateKey{}, st)
	if st.res.Chain == nil {
		h.forward(w, r.WithContext(ctx), st)
		return
	}
	// The filters see, and may change, the normalized path the route
	// matched; whatever they leave is what goes upstream.
	st.filtered = true
	r = r.WithContext(ctx)
	if r.URL.Path != st.res.Path {
		u := *r.URL
		u.Path, u.RawPath = st.res.Path, ""
		r.URL = &u
	}
	st.res.Chain.ServeHTTP(w, r)
}

// Forward returns the handler that ends every filter chain: it sends the
// request, as the filters left it, to an endpoint of the backend that
// ServeHTTP matched. It must only be called below ServeHTTP.
func (h *Handler) Forward() http.Handler { return forwarder{h} }

type forwarder struct{ h *Handler }

func (f forwarder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st, ok := r.Context().Value(stateKey{}).(*reqState)
	if !ok {
		plainError(w, http.StatusInternalServerError, "internal error: request not routed")
		return
	}
	f.h.forward(w, r, st)
}

// forward picks an endpoint and proxies r to it.
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, st *reqState) {
	st.ep = st.res.Pool.Pick(nil)
	if st.ep == nil {
		st.upErr = UpstreamNoEndpoints
		plainError(w, http.StatusServiceUnavailable, "no ready endpoints for "+serviceName(st.res.Backend))
		return
	}
	defer func() { st.ep.Done() }() // a retry may move st.ep to another endpoint
	if st.needsCancel() {
		ctx, cancel := context.WithCancelCause(r.Context())
		defer cancel(nil)
		st.cancel = cancel
		r = r.WithContext(ctx)
	}
	st.upStart = time.Now()
	h.rp.ServeHTTP(w, r)
}

// rewrite builds the outbound request: endpoint, normalized path,
// forwarding headers. The Host header is passed through unchanged.
func (h *Handler) rewrite(pr *httputil.ProxyRequest) {
	st := pr.In.Context().Value(stateKey{}).(*reqState)
	u := pr.Out.URL
	u.Scheme = st.scheme()
	u.Host = st.ep.Addr()
	if !st.filtered && u.Path != st.res.Path {
		// The route matched the normalized path; send exactly that. The
		// original escaping no longer applies to it.
		u.Path, u.RawPath = st.res.Path, ""
	}
	h.setForwarded(pr)
}

// stripIdentityHeaders removes client-supplied TLS identity headers; only
// the gateway may set them, after verifying a client certificate.
func stripIdentityHeaders(hdr http.Header) {
	for k := range hdr {
		if strings.EqualFold(k, "X-Forwarded-Client-Cert") ||
			len(k) >= len("Ssl-Client") && strings.EqualFold(k[:len("Ssl-Client")], "Ssl-Client") {
			delete(hdr, k)
		}
	}
}

// serviceName is "service default/web port 80" for backend
// "default/web:80", as shown in error bodies.
func serviceName(b *model.Backend) string {
	svc := b.Service.Namespace + "/" + b.Service.Name
	if b.Service.Name == "" {
		svc, _, _ = strings.Cut(b.Name, ":")
	}
	port := ""
	if i := strings.LastIndexByte(b.Name, ':'); i >= 0 {
		port = b.Name[i+1:]
	}
	return "service " + svc + " port " + port
}

func plainError(w http.ResponseWriter, code int, msg string) {
	hdr := w.Header()
	hdr.Set("Content-Type", "text/plain; charset=utf-8")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Del("Content-Length")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(msg + "\n"))
}

// proxyError answers a failed upstream round trip: 504 for timeouts, 502
// otherwise. The error itself goes to the log only.
func (h *Handler) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	if h.trafficError(w, r, err) {
		return
	}
	st := r.Context().Value(stateKey{}).(*reqState)
	code, msg := http.StatusBadGateway, "bad gateway: cannot reach "+serviceName(st.res.Backend)
	var ne net.Error
	switch {
	case errors.Is(err, errResponseTimeout) || errors.As(err, &ne) && ne.Timeout():
		code, msg = http.StatusGatewayTimeout, "gateway timeout: no answer in time from "+serviceName(st.res.Backend)
	case r.Context().Err() != nil:
		// The client went away; nobody reads this answer. 499 is nginx's
		// convention for the access log.
		st.status = 499
		return
	}
	st.status = code
	st.upErr = UpstreamUnreachable
	if code == http.StatusGatewayTimeout {
		st.upErr = UpstreamTimeout
	}
	h.log.LogAttrs(r.Context(), slog.LevelWarn, "upstream error",
		slog.String("backend", st.res.Backend.Name),
		slog.String("upstream", st.ep.Addr()),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.Int("status", code),
		slog.String("err", err.Error()))
	plainError(w, code, msg)
}
