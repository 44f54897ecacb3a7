//go:build !wasip1

package sdktest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sluicegw/sluice/sdk"
	"github.com/sluicegw/sluice/sdk/internal/abi"
)

// Options configure a Host. The zero value is usable.
type Options struct {
	// Config is what sdk.Config returns (the route's filter config, JSON).
	Config []byte
	// Upstream answers requests the filter lets through. Default: 200
	// with the body "upstream\n".
	Upstream http.Handler
	// Now is the clock of the token buckets. Default time.Now.
	Now func() time.Time
	// StoreDown makes RateTake and CounterAdd fail (sdk.ErrUnavailable).
	StoreDown bool
	// Route is what sdk.Route returns: the identity of the route the
	// request is served for, as the gateway writes it.
	Route string
}

// Result is what the client and the upstream saw for one request.
type Result struct {
	// Next is what HandleRequest returned: true when the request went on
	// to the upstream.
	Next bool
	// Status, Header, Trailer and Body are the response the client got.
	Status  int
	Header  http.Header
	Trailer http.Header
	Body    []byte
	// Upstream is the request as the upstream received it (nil when the
	// filter answered itself), with its body in UpstreamBody.
	Upstream     *http.Request
	UpstreamBody []byte
	// Err is a panic of the filter or an argument the real host would
	// trap on; Status is then 500.
	Err error
	// Logs are the filter's log messages, "level: message".
	Logs []string
}

// Host is a simulated host for one filter. Buckets, counters, metrics and
// the features the filter enabled in init persist across requests, as
// for one instance of the real host.
type Host struct {
	handler sdk.Handler
	opts    Options

	mu       sync.Mutex
	buckets  map[string]*bucket
	counters map[string]int64
	metrics  map[string]int64
}

// New returns a Host that runs h.
func New(h sdk.Handler, opts Options) *Host {
	if opts.Upstream == nil {
		opts.Upstream = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "upstream\n") })
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Host{handler: h, opts: opts, buckets: map[string]*bucket{}, counters: map[string]int64{}, metrics: map[string]int64{}}
}

// Metrics returns the metrics the filter added, by name.
func (h *Host) Metrics() map[string]int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]int64, len(h.metrics))
	for k, v := range h.metrics {
		out[k] = v
	}
	return out
}

// Counter returns the value of the filter's counter key.
func (h *Host) Counter(key string) int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.counters[key]
}

// calls serializes Do: the SDK's native build has one global host.
var calls sync.Mutex

// Do sends r through the filter: HandleRequest, then (if it returned
// true) the upstream and HandleResponse. r is not modified. Set r.TLS
// (PeerCertificates, VerifiedChains) to give the filter a client
// certificate and r.RemoteAddr for its source address.
func (h *Host) Do(r *http.Request) Result {
	calls.Lock()
	defer calls.Unlock()
	ex, err := h.newExchange(r)
	if err != nil {
		return Result{Status: 500, Err: err}
	}
	abi.Host = ex
	defer func() { abi.Host = nil }()

	next, err := ex.call(func() bool { return h.handler.HandleRequest(sdk.Request{}, sdk.Response{}) })
	if err != nil {
		return ex.failed(err)
	}
	if !next {
		return Result{Status: ex.status, Header: ex.respHeader, Trailer: ex.respTrailer, Body: ex.respBody, Logs: ex.logs}
	}
	res := Result{Next: true}
	res.Upstream, res.UpstreamBody = ex.outgoing()
	rec := httptest.NewRecorder()
	h.opts.Upstream.ServeHTTP(rec, res.Upstream.Clone(res.Upstream.Context()))
	up := rec.Result()
	upBody, _ := io.ReadAll(up.Body)
	for k, vs := range up.Header {
		ex.respHeader[k] = append(ex.respHeader[k], vs...)
	}
	if up.Trailer != nil {
		ex.respTrailer = up.Trailer
	}
	ex.status = up.StatusCode
	ex.respBody = append(ex.respBody, upBody...)
	ex.respWritten = false
	ex.response = true
	if rh, ok := h.handler.(sdk.ResponseHandler); ok {
		if _, err := ex.call(func() bool { rh.HandleResponse(sdk.Request{}, sdk.Response{}, false); return true }); err != nil {
			return ex.failed(err)
		}
	}
	res.Status, res.Header, res.Trailer, res.Body, res.Logs = ex.status, ex.respHeader, ex.respTrailer, ex.respBody, ex.logs
	return res
}

// trap is a panic value for an argument the real host traps on.
type trap struct{ err error }

func trapf(format string, args ...any) { panic(trap{fmt.Errorf(format, args...)}) }

// exchange is the host state of one request: abi.Backend.
type exchange struct {
	h        *Host
	req      *http.Request
	response bool // in the response phase
	features uint32

	reqBody     []byte
	reqRead     int
	reqWritten  bool
	newReqBody  []byte
	status      int
	respHeader  http.Header
	respTrailer http.Header
	respBody    []byte
	respRead    int
	respWritten bool
	logs        []string
}

var _ abi.Backend = (*exchange)(nil)

func (h *Host) newExchange(r *http.Request) (*exchange, error) {
	req := r.Clone(r.Context())
	var body []byte
	if r.Body != nil {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, fmt.Errorf("sdktest: reading the request body: %w", err)
		}
		body = b
		r.Body = io.NopCloser(bytes.NewReader(b)) // leave r readable
	}
	if req.Trailer == nil {
		req.Trailer = http.Header{}
	}
	return &exchange{h: h, req: req, reqBody: body, features: abi.InitFeatures, status: 200, respHeader: http.Header{}, respTrailer: http.Header{}}, nil
}

func (ex *exchange) call(fn func() bool) (next bool, err error) {
	defer func() {
		if v := recover(); v != nil {
			if t, ok := v.(trap); ok {
				err = t.err
				return
			}
			err = fmt.Errorf("filter panicked: %v", v)
		}
	}()
	return fn(), nil
}

func (ex *exchange) failed(err error) Result {
	return Result{Status: 500, Header: http.Header{}, Body: []byte("sluice: filter failed\n"), Err: err, Logs: ex.logs}
}

// outgoing is the request the upstream receives, and its body.
func (ex *exchange) outgoing() (*http.Request, []byte) {
	out := ex.req.Clone(ex.req.Context())
	body := ex.reqBody[ex.reqRead:]
	if ex.features&uint32(sdk.FeatureBufferRequest) != 0 {
		body = ex.reqBody
	}
	if ex.reqWritten {
		body = ex.newReqBody
		out.Header.Del("Content-Length")
	}
	body = append([]byte(nil), body...)
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	return out, body
}

func put(buf []byte, s string) uint32 {
	if len(s) <= len(buf) {
		copy(buf, s)
	}
	return uint32(len(s))
}

func putList(buf []byte, vs []string) uint64 {
	var b []byte
	for _, v := range vs {
		b = append(append(b, v...), 0)
	}
	if len(b) <= len(buf) {
		copy(buf, b)
	}
	return uint64(len(vs))<<32 | uint64(len(b))
}

func (ex *exchange) EnableFeatures(f uint32) uint32 {
	ex.features |= f & 7
	return ex.features
}

func (ex *exchange) GetConfig(buf []byte) uint32 { return put(buf, string(ex.h.opts.Config)) }

func (ex *exchange) Log(level int32, msg string) {
	names := map[int32]string{-1: "debug", 0: "info", 1: "warn", 2: "error"}
	if n, ok := names[level]; ok {
		ex.logs = append(ex.logs, n+": "+msg)
	}
}

func (ex *exchange) LogEnabled(level int32) uint32 {
	if level >= -1 && level <= 2 {
		return 1
	}
	return 0
}

func (ex *exchange) requestPhase(fn string) {
	if ex.response {
		trapf("http_handler.%s: request phase only", fn)
	}
}

func (ex *exchange) GetMethod(buf []byte) uint32 { return put(buf, ex.req.Method) }

func (ex *exchange) SetMethod(m string) {
	ex.requestPhase("set_method")
	if !validToken(m) {
		trapf("http_handler.set_method: %q is not a token", m)
	}
	ex.req.Method = m
}

func (ex *exchange) GetURI(buf []byte) uint32 {
	u := ex.req.URL.RequestURI()
	if u == "" {
		u = "/"
	}
	return put(buf, u)
}

func (ex *exchange) SetURI(u string) {
	ex.requestPhase("set_uri")
	if !strings.HasPrefix(u, "/") {
		trapf("http_handler.set_uri: %q does not start with /", u)
	}
	path, query, _ := strings.Cut(u, "?")
	nu := *ex.req.URL
	nu.RawQuery = query
	if err := setEscapedPath(&nu, path); err != nil {
		trapf("http_handler.set_uri: %q: %v", u, err)
	}
	ex.req.URL = &nu
	ex.req.RequestURI = ""
}

func (ex *exchange) GetProtocolVersion(buf []byte) uint32 {
	if ex.req.ProtoMajor == 2 {
		return put(buf, "HTTP/2.0")
	}
	return put(buf, "HTTP/1.1")
}

func (ex *exchange) GetSourceAddr(buf []byte) uint32 { return put(buf, ex.req.RemoteAddr) }

func (ex *exchange) header(fn string, kind uint32, write bool) http.Header {
	switch kind {
	case abi.KindRequest:
		if write {
			ex.requestPhase(fn)
		}
		return ex.req.Header
	case abi.KindResponse:
		if write && ex.response && ex.features&uint32(sdk.FeatureBufferResponse) == 0 {
			// Unbuffered: the headers may already be sent; the real host
			// accepts the write and it has no effect.
			return http.Header{}
		}
		return ex.respHeader
	case abi.KindRequestTrailer, abi.KindResponseTrailer:
		if ex.features&uint32(sdk.FeatureTrailers) == 0 {
			if write {
				trapf("http_handler.%s: trailers are not enabled", fn)
			}
			return http.Header{}
		}
		if kind == abi.KindRequestTrailer {
			return ex.req.Trailer
		}
		return ex.respTrailer
	}
	trapf("http_handler.%s: invalid header kind %d", fn, kind)
	return nil
}

func (ex *exchange) GetHeaderNames(kind uint32, buf []byte) uint64 {
	h := ex.header("get_header_names", kind, false)
	names := make([]string, 0, len(h)+1)
	for k := range h {
		names = append(names, strings.ToLower(k))
	}
	if kind == abi.KindRequest && ex.req.Host != "" {
		names = append(names, "host")
	}
	sort.Strings(names)
	return putList(buf, names)
}

func (ex *exchange) GetHeaderValues(kind uint32, name string, buf []byte) uint64 {
	if kind == abi.KindRequest && strings.EqualFold(name, "host") {
		return putList(buf, []string{ex.req.Host})
	}
	h := ex.header("get_header_values", kind, false)
	return putList(buf, h.Values(name))
}

func (ex *exchange) checkHeader(fn, name, value string) {
	if !validToken(name) {
		trapf("http_handler.%s: header name %q is not a token", fn, name)
	}
	if strings.ContainsAny(value, "\r\n\x00") {
		trapf("http_handler.%s: header %s: invalid value %q", fn, name, value)
	}
}

func (ex *exchange) SetHeaderValue(kind uint32, name, value string) {
	ex.checkHeader("set_header_value", name, value)
	h := ex.header("set_header_value", kind, true)
	if kind == abi.KindRequest && strings.EqualFold(name, "host") {
		ex.req.Host = value
		return
	}
	h.Set(name, value)
}

func (ex *exchange) AddHeaderValue(kind uint32, name, value string) {
	ex.checkHeader("add_header_value", name, value)
	h := ex.header("add_header_value", kind, true)
	if kind == abi.KindRequest && strings.EqualFold(name, "host") {
		ex.req.Host = value
		return
	}
	h.Add(name, value)
}

func (ex *exchange) RemoveHeader(kind uint32, name string) {
	ex.checkHeader("remove_header", name, "")
	ex.header("remove_header", kind, true).Del(name)
}

func (ex *exchange) ReadBody(kind uint32, buf []byte) uint64 {
	if len(buf) == 0 {
		trapf("http_handler.read_body: buf_limit must not be 0")
	}
	var body []byte
	var off *int
	switch kind {
	case abi.KindRequest:
		body, off = ex.reqBody, &ex.reqRead
	case abi.KindResponse:
		if !ex.response || ex.features&uint32(sdk.FeatureBufferResponse) == 0 {
			return 1 << 32 // EOF
		}
		body, off = ex.respBody, &ex.respRead
	default:
		trapf("http_handler.read_body: invalid body kind %d", kind)
	}
	n := copy(buf, body[*off:])
	*off += n
	var eof uint64
	if *off == len(body) {
		eof = 1
	}
	return eof<<32 | uint64(n)
}

func (ex *exchange) WriteBody(kind uint32, b []byte) {
	switch kind {
	case abi.KindRequest:
		ex.requestPhase("write_body")
		if !ex.reqWritten {
			ex.reqWritten, ex.newReqBody = true, nil
		}
		ex.newReqBody = append(ex.newReqBody, b...)
	case abi.KindResponse:
		if ex.response && ex.features&uint32(sdk.FeatureBufferResponse) != 0 && !ex.respWritten {
			ex.respBody = nil
		}
		ex.respWritten = true
		ex.respBody = append(ex.respBody, b...)
	default:
		trapf("http_handler.write_body: invalid body kind %d", kind)
	}
}

func (ex *exchange) GetStatusCode() uint32 { return uint32(ex.status) }

func (ex *exchange) SetStatusCode(code uint32) {
	if code < 100 || code > 999 {
		trapf("http_handler.set_status_code: %d not in [100, 999]", code)
	}
	if ex.response && ex.features&uint32(sdk.FeatureBufferResponse) == 0 {
		return // the status line is already sent
	}
	ex.status = int(code)
}

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}
