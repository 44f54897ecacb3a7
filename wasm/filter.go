package wasm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/sluicegw/sluice/wasm/internal/instrument"
	"github.com/sluicegw/sluice/wasm/internal/pool"
)

// FailPolicy says what a request does when its filter fails.
type FailPolicy int

const (
	// FailClosed answers 500 (guest failure) or 503 (no instance, filter
	// closed) with a short body. The default.
	FailClosed FailPolicy = iota
	// FailOpen continues the chain as if the filter were absent.
	FailOpen
)

// ParseFailPolicy parses "closed" (or "") and "open".
func ParseFailPolicy(s string) (FailPolicy, error) {
	switch s {
	case "", "closed":
		return FailClosed, nil
	case "open":
		return FailOpen, nil
	}
	return 0, fmt.Errorf("fail policy %q: want closed or open", s)
}

// PoolConfig sizes a filter's instance pool.
type PoolConfig struct {
	// Min instances are created by NewFilter and kept warm. 0 allows a
	// cold start on the first request (measured and logged).
	Min int
	// Max bounds the instances (and so the concurrent requests in this
	// filter). Default max(Min, 4).
	Max int
	// IdleTimeout: instances above Min idle this long are closed.
	// Default 30 s.
	IdleTimeout time.Duration
	// Wait bounds how long a request waits for an instance when all Max
	// are busy; then the filter fails with FailureBusy. Default 1 s.
	Wait time.Duration
}

// FilterSpec describes one filter: a module, its per-route config and its
// limits.
type FilterSpec struct {
	Name   string // used in logs and errors, and namespaces store keys
	Module Source
	Config []byte // returned by http_handler.get_config
	Fail   FailPolicy
	Pool   PoolConfig
	// Timeout is the per-call deadline; 0 uses the host's.
	Timeout time.Duration
	// MaxBodyBytes bounds bodies the host buffers for the guest (buffered
	// request, written bodies). Default 16 MiB.
	MaxBodyBytes int64
	// RecycleAfter closes an instance after it served this many requests
	// (0: never). Bounds guest heap growth, e.g. of Go guests.
	RecycleAfter int
	// Env is added to the host's guest environment (Config.GuestEnv) for
	// this filter's instances; its keys win. The built-in filters share
	// one module and read which of them to be from it.
	Env map[string]string
}

// PoolStats are the instance pool's counters: Size, InUse, Idle, Waiting,
// Creating, Instantiations, CreateErrors, Discards, Shrinks, Timeouts.
type PoolStats = pool.Stats

// Stats are a filter's counters, plain numbers for the metrics endpoint.
type Stats struct {
	Pool       PoolStats
	Requests   uint64 // requests that entered the filter
	Traps      uint64
	Deadlines  uint64
	MemoryCaps uint64
	Busy       uint64 // no instance in time, or filter closed
	FailedOpen uint64 // failures that continued the chain (FailOpen)
	FailedShut uint64 // failures answered with 5xx (FailClosed)
	Recycled   uint64
	// LastColdStart is the duration of the last instantiation.
	LastColdStart time.Duration
}

// Filter is a loaded module with its config, pool and limits. Its
// Middleware is safe for concurrent use by any number of requests.
type Filter struct {
	name    string
	host    *Host
	mod     *module
	config  []byte
	fail    FailPolicy
	timeout time.Duration
	maxBody int64
	recycle int
	logger  *slog.Logger
	pool    *pool.Pool[*instance]
	closed  atomic.Bool

	requests, traps, deadlines, memcaps, busy, failedOpen, failedShut, recycled atomic.Uint64
	lastCold                                                                    atomic.Int64
}

// NewFilter loads (or reuses) the module, checks it is an http-wasm guest
// and creates the pool with Pool.Min warm instances. A module that fails to
// load, validate or instantiate is refused with an error naming the filter.
func (h *Host) NewFilter(ctx context.Context, spec FilterSpec) (*Filter, error) {
	if spec.Name == "" {
		return nil, errors.New("filter: name is required")
	}
	if spec.Timeout <= 0 {
		spec.Timeout = h.timeout
	}
	if spec.MaxBodyBytes <= 0 {
		spec.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if spec.Pool.Max <= 0 {
		spec.Pool.Max = max(spec.Pool.Min, 4)
	}
	if spec.Pool.Min < 0 || spec.Pool.Min > spec.Pool.Max {
		return nil, fmt.Errorf("filter %s: pool min %d not in [0, max %d]", spec.Name, spec.Pool.Min, spec.Pool.Max)
	}
	for k, v := range spec.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return nil, fmt.Errorf("filter %s: env %q=%q: want a name without '=' or NUL and a value without NUL", spec.Name, k, v)
		}
	}
	m, err := h.acquire(ctx, spec.Name, spec.Module)
	if err != nil {
		return nil, err
	}
	f := &Filter{
		name:    spec.Name,
		host:    h,
		mod:     m,
		config:  append([]byte(nil), spec.Config...),
		fail:    spec.Fail,
		timeout: spec.Timeout,
		maxBody: spec.MaxBodyBytes,
		recycle: spec.RecycleAfter,
		logger:  h.logger.With("filter", spec.Name),
	}
	modCfg := h.moduleConfig(m, f.logger, spec.Env)
	f.pool = pool.New(pool.Config[*instance]{
		Min:         spec.Pool.Min,
		Max:         spec.Pool.Max,
		IdleTimeout: spec.Pool.IdleTimeout,
		Wait:        spec.Pool.Wait,
		New: func(ctx context.Context) (*instance, error) {
			return f.instantiate(ctx, modCfg)
		},
		Close: func(in *instance) { in.close() },
		OnError: func(err error) {
			f.logger.Error("instantiate failed", "err", err)
		},
	})
	if err := f.pool.Warm(ctx); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Name returns the filter's name.
func (f *Filter) Name() string { return f.name }

// Digest returns the module's sha256 (hex).
func (f *Filter) Digest() string { return f.mod.digest }

func (f *Filter) instantiate(_ context.Context, modCfg wazero.ModuleConfig) (*instance, error) {
	began := time.Now()
	in := &instance{f: f, done: make(chan struct{})}
	in.guard = f.host.wd.Register(in)
	// A module's start section (if any) runs inside InstantiateModule:
	// only modules in the close-on-context-done runtime have one (the
	// rewriter leaves them there), and the guard cancels their context.
	in.guard.Arm(10 * f.timeout)
	mod, err := f.mod.rt.InstantiateModule(in, f.mod.cm, modCfg)
	if in.guard.Disarm() {
		if mod != nil {
			_ = mod.Close(context.Background())
		}
		f.host.wd.Unregister(in.guard)
		return nil, &FilterError{Filter: f.name, Phase: "instantiate", Kind: FailureDeadline,
			Err: fmt.Errorf("start section exceeded its deadline of %s", 10*f.timeout)}
	}
	if err != nil {
		f.host.wd.Unregister(in.guard)
		return nil, &FilterError{Filter: f.name, Phase: "instantiate", Kind: FailureTrap, Err: err}
	}
	in.mod, in.mem = mod, mod.Memory()
	if f.mod.fuel {
		g, ok := mod.ExportedGlobal(instrument.StopExport).(api.MutableGlobal)
		if !ok {
			in.close()
			return nil, &FilterError{Filter: f.name, Phase: "instantiate", Kind: FailureTrap, Err: errors.New("instrumented module lacks its stop global")}
		}
		in.stop = g
	}
	// Run _initialize (reactor) or _start (command) once, under a deadline
	// of 10 calls: a guest runtime's init may be slow (Go: ~6 ms) but must
	// not hang.
	start := ""
	switch {
	case f.mod.reactor:
		start = "_initialize"
	case f.mod.start:
		start = "_start"
	}
	if start != "" {
		if err := in.callTimeout(start, mod.ExportedFunction(start), nil, 10*f.timeout); err != nil {
			in.close()
			return nil, err
		}
		if mod.IsClosed() {
			in.close()
			return nil, &FilterError{Filter: f.name, Phase: start, Kind: FailureTrap, Err: errors.New("the guest exited: a filter must not call proc_exit")}
		}
	}
	in.hreq = mod.ExportedFunction("handle_request")
	in.hres = mod.ExportedFunction("handle_response")
	d := time.Since(began)
	f.lastCold.Store(int64(d))
	if f.pool != nil && f.pool.Stats().Size == 0 {
		// The pool was empty (min 0, or every instance failed): a request
		// may be waiting on this instantiation.
		f.logger.Info("cold start", "duration", d, "digest", f.mod.digest[:12])
	} else {
		f.logger.Debug("instance created", "duration", d)
	}
	return in, nil
}

// Stats returns the filter's counters.
func (f *Filter) Stats() Stats {
	return Stats{
		Pool:          f.pool.Stats(),
		Requests:      f.requests.Load(),
		Traps:         f.traps.Load(),
		Deadlines:     f.deadlines.Load(),
		MemoryCaps:    f.memcaps.Load(),
		Busy:          f.busy.Load(),
		FailedOpen:    f.failedOpen.Load(),
		FailedShut:    f.failedShut.Load(),
		Recycled:      f.recycled.Load(),
		LastColdStart: time.Duration(f.lastCold.Load()),
	}
}

// Close stops the filter: new requests fail per policy (FailureClosed),
// idle instances close now, in-flight requests finish and their instances
// close when returned; then the compiled module reference is dropped (the
// module closes with its last filter). Close does not block and is
// idempotent. Drained reports when everything is released.
func (f *Filter) Close() {
	if f.closed.Swap(true) {
		return
	}
	f.pool.Close()
	select {
	case <-f.pool.Drained():
		f.host.release(f.mod)
	default:
		go func() {
			<-f.pool.Drained()
			f.host.release(f.mod)
		}()
	}
}

// Drained is closed once a closed filter has released all its instances.
// (Its module reference is dropped right after.)
func (f *Filter) Drained() <-chan struct{} { return f.pool.Drained() }

// Middleware returns next wrapped by this filter.
func (f *Filter) Middleware(next http.Handler) http.Handler {
	return &filterHandler{f: f, next: next}
}

type filterHandler struct {
	f    *Filter
	next http.Handler
}

func (h *filterHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.f.serve(w, r, h.next)
}

// Chain wraps next in filters, the first filter outermost (it sees the
// request first and the response last).
func Chain(next http.Handler, filters ...*Filter) http.Handler {
	for i := len(filters) - 1; i >= 0; i-- {
		next = filters[i].Middleware(next)
	}
	return next
}

func (f *Filter) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	f.requests.Add(1)
	in, err := f.pool.Get(r.Context())
	if err != nil {
		kind := FailureBusy
		if errors.Is(err, pool.ErrClosed) {
			kind = FailureClosed
		}
		var fe *FilterError
		if !errors.As(err, &fe) {
			err = &FilterError{Filter: f.name, Phase: "acquire", Kind: kind, Err: err}
		}
		f.failed(w, r, next, err)
		return
	}
	in.begin(w, r)
	returned := false
	defer func() {
		if !returned { // next panicked (e.g. http.ErrAbortHandler): don't leak the instance
			in.end()
			f.pool.Discard(in)
		}
	}()

	in.stack[0] = 0
	if err := in.call("handle_request", in.hreq, in.stack[:]); err != nil {
		in.end()
		returned = true
		f.pool.Discard(in)
		f.failed(w, r, next, err)
		return
	}
	ctxNext := in.stack[0]
	if uint32(ctxNext)&1 == 0 {
		in.writeOwn()
		in.end()
		returned = true
		f.put(in)
		return
	}
	out := in.outgoing()
	buffered := in.st.features&FeatureBufferResponse != 0
	// A response body the guest wrote in handle_request starts the
	// response body; the next handler's body follows it.
	if buffered {
		in.rec = recorder{w: w, body: append(in.rec.body[:0], in.st.body...), prefixed: len(in.st.body) > 0}
		next.ServeHTTP(&in.rec, out)
	} else {
		in.cw = captureWriter{w: w, pending: in.st.body}
		next.ServeHTTP(&in.cw, out)
		in.cw.finish()
		if in.st.features&FeatureTrailers != 0 {
			// Commit the head now: HTTP/1.1 then streams chunked, so
			// trailers set by handle_response can still be sent (a
			// response with a Content-Length cannot carry trailers).
			in.cw.Flush()
		}
	}
	in.st.phase = phaseResponse
	in.stack[0], in.stack[1] = ctxNext>>32, 0
	if err := in.call("handle_response", in.hres, in.stack[:]); err != nil {
		f.count(err)
		f.logger.Warn("filter failed in handle_response", "err", err, "policy", policyName(f.fail))
		switch {
		case !buffered:
			// The response is already streaming downstream: only count.
		case f.fail == FailOpen:
			f.failedOpen.Add(1)
			in.rec.flush() // the next handler's response, as received
		default:
			f.failedShut.Add(1)
			f.writeFailure(w, err)
		}
		in.end()
		returned = true
		f.pool.Discard(in)
		return
	}
	if buffered {
		in.rec.flush()
	}
	in.end()
	returned = true
	f.put(in)
}

// outgoing applies request body changes and returns the request for next.
func (in *instance) outgoing() *http.Request {
	if in.st.reqWritten {
		o := in.mutable()
		b := append([]byte(nil), in.st.newReqBody...)
		o.Body = http.NoBody
		if len(b) > 0 {
			o.Body = io.NopCloser(bytes.NewReader(b))
		}
		o.ContentLength = int64(len(b))
		in.mutableHeader().Del("Content-Length")
	}
	return in.request()
}

// writeOwn sends the response the guest built in handle_request (next=0).
func (in *instance) writeOwn() {
	w := in.st.w
	h := w.Header()
	h.Del("Content-Length") // a guest-set length could not match the body
	if len(in.st.body) > 0 {
		h.Set("Content-Length", itoa(len(in.st.body)))
	}
	w.WriteHeader(in.st.status)
	if len(in.st.body) > 0 {
		_, _ = w.Write(in.st.body)
	}
}

func (f *Filter) put(in *instance) {
	in.requests++
	if f.recycle > 0 && in.requests >= f.recycle {
		f.recycled.Add(1)
		f.pool.Discard(in)
		return
	}
	f.pool.Put(in)
}

func (f *Filter) count(err error) {
	var fe *FilterError
	if !errors.As(err, &fe) {
		f.traps.Add(1)
		return
	}
	switch fe.Kind {
	case FailureDeadline:
		f.deadlines.Add(1)
	case FailureMemory:
		f.memcaps.Add(1)
	case FailureBusy, FailureClosed:
		f.busy.Add(1)
	default:
		f.traps.Add(1)
	}
}

// failed applies the failure policy before anything was sent downstream.
func (f *Filter) failed(w http.ResponseWriter, r *http.Request, next http.Handler, err error) {
	f.count(err)
	f.logger.Warn("filter failed", "err", err, "policy", policyName(f.fail))
	if f.fail == FailOpen {
		f.failedOpen.Add(1)
		next.ServeHTTP(w, r)
		return
	}
	f.failedShut.Add(1)
	f.writeFailure(w, err)
}

func (f *Filter) writeFailure(w http.ResponseWriter, err error) {
	code, msg := http.StatusInternalServerError, "filter failed"
	var fe *FilterError
	if errors.As(err, &fe) && (fe.Kind == FailureBusy || fe.Kind == FailureClosed) {
		code, msg = http.StatusServiceUnavailable, "filter unavailable"
	}
	h := w.Header()
	h.Del("Content-Length")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = fmt.Fprintf(w, "sluice: %s %s\n", msg, f.name)
}

func policyName(p FailPolicy) string {
	if p == FailOpen {
		return "open"
	}
	return "closed"
}
