package wasm

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/sluicegw/sluice/wasm/internal/watchdog"
)

// Features are the http-wasm feature flags (enable_features).
type Features uint32

const (
	FeatureBufferRequest  Features = 1 << 0
	FeatureBufferResponse Features = 1 << 1
	FeatureTrailers       Features = 1 << 2

	supportedFeatures = FeatureBufferRequest | FeatureBufferResponse | FeatureTrailers
)

type phase uint8

const (
	phaseInit     phase = iota // _start/_initialize: no request bound
	phaseRequest               // handle_request
	phaseResponse              // handle_response
)

// instance is one guest module instance. It serves one request at a time
// (the pool guarantees it) and is pinned to that request from
// handle_request to handle_response.
//
// The instance is itself the context.Context of every guest call: its Done
// channel is closed by the watchdog when a call overruns, which makes
// wazero (WithCloseOnContextDone) stop the guest. Passing the same context
// to every call avoids allocating one per call. Once Done is closed the
// instance is dead and must be discarded.
type instance struct {
	f    *Filter
	mod  api.Module
	mem  api.Memory
	hreq api.Function
	hres api.Function

	guard  *watchdog.Entry
	done   chan struct{}     // closed on expiry (InterruptContext)
	stop   api.MutableGlobal // set on expiry (InterruptFuel)
	killed atomic.Bool

	stack    [2]uint64
	requests int      // requests served, for FilterSpec.RecycleAfter
	base     Features // enabled during instantiation, for every request

	st reqState

	// buffers reused across requests
	scratch []byte
	keys    []string
	cw      captureWriter
	rec     recorder
}

// reqState is reset for every request.
type reqState struct {
	phase    phase
	features Features
	w        http.ResponseWriter // the downstream writer (for response headers)
	r        *http.Request       // the request as received
	out      *http.Request       // lazily made shallow copy when the guest mutates the request
	hdrOwned bool                // out.Header is a private clone
	urlOwned bool                // out.URL is a private copy
	trlOwned bool                // out.Trailer is a private clone

	status     int    // the guest's own response (handle_request, next=0)
	body       []byte // the guest's own response body
	reqBody    []byte // buffered request body (FeatureBufferRequest)
	reqLoaded  bool
	reqOff     int
	reqEOF     bool   // unbuffered request body hit EOF
	newReqBody []byte // request body written by the guest
	reqWritten bool
	respOff    int // read offset into the buffered response body
}

// context.Context, so the instance can be the ctx of its own calls.

func (in *instance) Deadline() (time.Time, bool) { return time.Time{}, false }
func (in *instance) Done() <-chan struct{}       { return in.done }
func (in *instance) Err() error {
	if in.killed.Load() {
		return context.DeadlineExceeded
	}
	return nil
}

type instanceKey struct{}

func (in *instance) Value(key any) any {
	if key == (instanceKey{}) {
		return in
	}
	return nil
}

// Expire implements watchdog.Target: called once, from the watchdog
// goroutine, when a call overruns.
func (in *instance) Expire() {
	in.killed.Store(true)
	if in.stop != nil {
		// Written while the guest may run: the guest reads it in native
		// code at its next fuel check (an aligned 64-bit store).
		in.stop.Set(1)
		return
	}
	close(in.done)
}

var _ context.Context = (*instance)(nil)
var _ watchdog.Target = (*instance)(nil)

// instanceFrom recovers the instance from a host function's context.
func instanceFrom(ctx context.Context) *instance {
	if in, ok := ctx.(*instance); ok {
		return in
	}
	in, _ := ctx.Value(instanceKey{}).(*instance)
	return in
}

// call runs fn under the per-call deadline. Any error means the instance
// is dead.
func (in *instance) call(phaseName string, fn api.Function, stack []uint64) error {
	return in.callTimeout(phaseName, fn, stack, in.f.timeout)
}

func (in *instance) callTimeout(phaseName string, fn api.Function, stack []uint64, timeout time.Duration) error {
	in.guard.Arm(timeout)
	err := fn.CallWithStack(in, stack)
	if in.guard.Disarm() {
		return &FilterError{Filter: in.f.name, Phase: phaseName, Kind: FailureDeadline,
			Err: errors.New("deadline of " + timeout.String() + " exceeded")}
	}
	if err != nil {
		return in.classify(phaseName, err)
	}
	return nil
}

// classify turns a guest call error into a FilterError.
func (in *instance) classify(phaseName string, err error) error {
	kind := FailureTrap
	var exit *sys.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == sys.ExitCodeDeadlineExceeded {
		kind = FailureDeadline
	} else if in.mem != nil && in.f.host.memLimitBytes > 0 && uint64(in.mem.Size()) >= in.f.host.memLimitBytes {
		// A trap at the memory cap: a failed memory.grow turned into an
		// out-of-memory abort by the guest.
		kind = FailureMemory
	}
	return &FilterError{Filter: in.f.name, Phase: phaseName, Kind: kind, Err: err}
}

// begin binds the instance to a request.
func (in *instance) begin(w http.ResponseWriter, r *http.Request) {
	in.st = reqState{
		phase:      phaseRequest,
		features:   in.base,
		w:          w,
		r:          r,
		status:     http.StatusOK,
		body:       in.st.body[:0],
		newReqBody: in.st.newReqBody[:0],
	}
}

// end unbinds the request and drops references to it.
func (in *instance) end() {
	const keep = 64 << 10 // don't pin big buffers in idle instances
	body, nb := in.st.body[:0], in.st.newReqBody[:0]
	if cap(body) > keep {
		body = nil
	}
	if cap(nb) > keep {
		nb = nil
	}
	in.st = reqState{body: body, newReqBody: nb}
	in.cw = captureWriter{}
	rb := in.rec.body[:0]
	if cap(rb) > keep {
		rb = nil
	}
	in.rec = recorder{body: rb}
	if cap(in.scratch) > keep {
		in.scratch = nil
	}
	clear(in.keys)
	in.keys = in.keys[:0]
}

// request returns the request as the next handler will see it.
func (in *instance) request() *http.Request {
	if in.st.out != nil {
		return in.st.out
	}
	return in.st.r
}

// mutable returns the private copy of the request, making it on first use.
func (in *instance) mutable() *http.Request {
	if in.st.out == nil {
		c := new(http.Request)
		*c = *in.st.r
		in.st.out = c
	}
	return in.st.out
}

func (in *instance) mutableHeader() http.Header {
	o := in.mutable()
	if !in.st.hdrOwned {
		o.Header = o.Header.Clone()
		if o.Header == nil {
			o.Header = http.Header{}
		}
		in.st.hdrOwned = true
	}
	return o.Header
}

func (in *instance) mutableTrailer() http.Header {
	o := in.mutable()
	if !in.st.trlOwned {
		o.Trailer = o.Trailer.Clone()
		if o.Trailer == nil {
			o.Trailer = http.Header{}
		}
		in.st.trlOwned = true
	}
	return o.Trailer
}

func (in *instance) close() {
	if in.mod != nil {
		_ = in.mod.Close(context.Background())
	}
	in.f.host.wd.Unregister(in.guard)
}

// captureWriter passes the response through, remembering the status so
// that handle_response can read it. pending is a body the guest wrote in
// handle_request: it is sent right after the status line.
type captureWriter struct {
	w       http.ResponseWriter
	status  int
	wrote   bool
	pending []byte
}

func (c *captureWriter) Header() http.Header { return c.w.Header() }
func (c *captureWriter) WriteHeader(code int) {
	if !c.wrote && code >= 200 && len(c.pending) > 0 {
		h := c.w.Header()
		if cl := h.Get("Content-Length"); cl != "" {
			if n, err := strconv.ParseInt(cl, 10, 64); err == nil {
				h.Set("Content-Length", strconv.FormatInt(n+int64(len(c.pending)), 10))
			}
		}
	}
	c.w.WriteHeader(code)
	if !c.wrote && code >= 200 {
		c.status, c.wrote = code, true
		if len(c.pending) > 0 {
			_, _ = c.w.Write(c.pending)
			c.pending = nil
		}
	}
}
func (c *captureWriter) Write(p []byte) (int, error) {
	if !c.wrote {
		c.WriteHeader(http.StatusOK)
	}
	return c.w.Write(p)
}

// finish sends a pending body the next handler did not follow with its own.
func (c *captureWriter) finish() {
	if !c.wrote && len(c.pending) > 0 {
		c.WriteHeader(http.StatusOK)
	}
}
func (c *captureWriter) Flush() {
	if f, ok := c.w.(http.Flusher); ok {
		f.Flush()
	}
}
func (c *captureWriter) Unwrap() http.ResponseWriter { return c.w }

// recorder buffers the next handler's response (FeatureBufferResponse) so
// handle_response can read and rewrite it. Headers go straight to the
// downstream writer's map, which is not sent before flush.
type recorder struct {
	w         http.ResponseWriter
	status    int
	wrote     bool
	body      []byte
	rewritten bool // handle_response replaced the body
	prefixed  bool // the body starts with one written in handle_request
}

func (r *recorder) Header() http.Header { return r.w.Header() }
func (r *recorder) WriteHeader(code int) {
	if !r.wrote && code >= 200 {
		r.status, r.wrote = code, true
	}
}
func (r *recorder) Write(p []byte) (int, error) {
	if !r.wrote {
		r.status, r.wrote = http.StatusOK, true
	}
	r.body = append(r.body, p...)
	return len(p), nil
}
func (r *recorder) Flush() {}

func (r *recorder) code() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

// flush sends the buffered response downstream.
func (r *recorder) flush() {
	h := r.w.Header()
	if r.rewritten || r.prefixed {
		h.Del("Content-Length")
		h.Set("Content-Length", itoa(len(r.body)))
	}
	r.w.WriteHeader(r.code())
	if len(r.body) > 0 {
		_, _ = r.w.Write(r.body)
	}
}

var (
	_ http.ResponseWriter = (*captureWriter)(nil)
	_ http.Flusher        = (*captureWriter)(nil)
	_ http.ResponseWriter = (*recorder)(nil)
	_ http.Flusher        = (*recorder)(nil)
)
