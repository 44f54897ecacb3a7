package plugins

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"

	"golang.org/x/net/http/httpguts"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// RouteFilter is a plugin as one route uses it: the plugin name, the
// route's config for it and its failure policy. It follows the plugin
// through restarts and binary changes. Safe for concurrent use.
type RouteFilter struct {
	slot   *slot
	config []byte
	fail   FailPolicy
	// override is set when the route chose its own failure policy.
	override bool
}

// Filter returns the middleware factory for the plugin name with the
// route's config (JSON, may be nil). A non-nil fail replaces the plugin's
// failure policy for this route. It fails only for a name that is not
// configured.
func (m *Manager) Filter(name string, config []byte, fail *FailPolicy) (*RouteFilter, error) {
	m.mu.Lock()
	s := m.slots[name]
	m.mu.Unlock()
	if s == nil {
		return nil, fmt.Errorf("plugin %s: not configured or its binary could not be read", name)
	}
	f := &RouteFilter{slot: s, config: config}
	if fail != nil {
		f.fail, f.override = *fail, true
	}
	return f, nil
}

// Name is the plugin's name.
func (f *RouteFilter) Name() string { return f.slot.name }

// Middleware returns next wrapped by the plugin.
func (f *RouteFilter) Middleware(next http.Handler) http.Handler {
	return &handler{f: f, next: next}
}

// Stats are a plugin's counters, summed over every route that uses it and
// every process it ran.
type Stats struct {
	Requests    uint64 // requests that entered the plugin
	Replies     uint64 // answered early by the plugin
	Unavailable uint64 // plugin down, restarting, removed or busy
	Timeouts    uint64 // calls cut at the per-call timeout
	Errors      uint64 // calls that failed otherwise
	FailedOpen  uint64 // failures that continued the chain
	FailedShut  uint64 // failures answered with 5xx
	Restarts    uint64 // processes replaced after a crash or failed check
}

type counters struct {
	requests, replies, unavailable, timeouts, errors, failedOpen, failedShut, restarts atomic.Uint64
}

// Stats returns the counters of the plugin name.
func (m *Manager) Stats(name string) (Stats, bool) {
	m.mu.Lock()
	s := m.slots[name]
	m.mu.Unlock()
	if s == nil {
		return Stats{}, false
	}
	c := &s.stats
	return Stats{
		Requests: c.requests.Load(), Replies: c.replies.Load(), Unavailable: c.unavailable.Load(),
		Timeouts: c.timeouts.Load(), Errors: c.errors.Load(), FailedOpen: c.failedOpen.Load(),
		FailedShut: c.failedShut.Load(), Restarts: c.restarts.Load(),
	}, true
}

// failure kinds, for counters, logs and the closed answer.
type failKind int

const (
	failUnavailable failKind = iota
	failTimeout
	failError
)

// callError is a failed plugin call.
type callError struct {
	plugin string
	phase  string // request | response
	kind   failKind
	err    error
}

func (e *callError) Error() string {
	return fmt.Sprintf("plugin %s: %s: %v", e.plugin, e.phase, e.err)
}

func (e *callError) Unwrap() error { return e.err }

var errDown = errors.New("not running (starting, restarting or removed)")

type handler struct {
	f    *RouteFilter
	next http.Handler
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f := h.f
	st := &f.slot.stats
	st.requests.Add(1)
	p := f.slot.cur.Load()
	if p == nil {
		f.failed(w, r, h.next, nil, &callError{f.slot.name, "request", failUnavailable, errDown})
		return
	}
	var act *RequestAction
	p, err := f.call(r.Context(), p, "request", func(ctx context.Context, pf Filter) error {
		var err error
		act, err = pf.HandleRequest(ctx, &Request{
			Method:     r.Method,
			URI:        r.URL.RequestURI(),
			Proto:      r.Proto,
			Host:       r.Host,
			Header:     r.Header,
			RemoteAddr: r.RemoteAddr,
			Config:     f.config,
		})
		return err
	})
	if err == nil && act != nil && act.Reply != nil {
		err = checkReply(act.Reply)
		if err == nil {
			st.replies.Add(1)
			writeReply(w, act.Reply)
			return
		}
		err = &callError{f.slot.name, "request", failError, err}
	}
	var out *http.Request
	if err == nil {
		out, err = apply(r, act)
		if err != nil {
			err = &callError{f.slot.name, "request", failError, err}
		}
	}
	if err != nil {
		f.failed(w, r, h.next, p, err)
		return
	}
	if act == nil || !act.WantResponse {
		h.next.ServeHTTP(w, out)
		return
	}
	rw := &responseWriter{w: w, f: f, p: p, ctx: r.Context(), state: act.State}
	h.next.ServeHTTP(rw, out)
	rw.commit(http.StatusOK) // a handler that wrote nothing sent 200
}

// call runs fn on p and returns the plugin that answered. A plugin being
// replaced (config or binary change) may be killed between a request
// picking it and its call; such a call is retried once on the successor,
// so a reload loses no request.
func (f *RouteFilter) call(ctx context.Context, p *plugin, phase string, fn func(context.Context, Filter) error) (*plugin, error) {
	err := p.call(ctx, phase, fn)
	var ce *callError
	if err != nil && errors.As(err, &ce) && ce.kind == failUnavailable {
		if next := f.slot.cur.Load(); next != nil && next != p && ctx.Err() == nil {
			return next, next.call(ctx, phase, fn)
		}
	}
	return p, err
}

// call runs fn against the current process under the per-call timeout and
// the concurrency limit, and classifies its failure.
func (p *plugin) call(parent context.Context, phase string, fn func(context.Context, Filter) error) error {
	ctx, cancel := context.WithTimeout(parent, p.spec.Timeout)
	defer cancel()
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return &callError{p.spec.Name, phase, failUnavailable, fmt.Errorf("%d calls in flight (max_concurrent) for %s: %w", p.spec.MaxConcurrent, p.spec.Timeout, ctx.Err())}
	}
	defer func() { <-p.sem }()
	pr := p.proc.Load()
	if pr == nil {
		return &callError{p.spec.Name, phase, failUnavailable, errDown}
	}
	err := fn(ctx, pr.f)
	if err == nil {
		return nil
	}
	kind := failError
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded), status.Code(err) == codes.DeadlineExceeded:
		kind, err = failTimeout, fmt.Errorf("no answer within %s: %w", p.spec.Timeout, err)
	case status.Code(err) == codes.Unavailable:
		kind = failUnavailable
	}
	return &callError{p.spec.Name, phase, kind, err}
}

// failed applies the failure policy before anything was sent downstream.
func (f *RouteFilter) failed(w http.ResponseWriter, r *http.Request, next http.Handler, p *plugin, err error) {
	policy := f.policy(p)
	kind := f.count(err)
	if r.Context().Err() != nil {
		return // the client left; nobody reads the answer
	}
	if p != nil {
		p.log.Warn("plugin call failed", "error", err, "policy", policy.String())
	}
	if policy == FailOpen {
		f.slot.stats.failedOpen.Add(1)
		next.ServeHTTP(w, r)
		return
	}
	f.slot.stats.failedShut.Add(1)
	writeFailure(w, f.slot.name, kind)
}

func (f *RouteFilter) policy(p *plugin) FailPolicy {
	if f.override || p == nil {
		return f.fail
	}
	return p.spec.Fail
}

func (f *RouteFilter) count(err error) failKind {
	kind := failError
	var ce *callError
	if errors.As(err, &ce) {
		kind = ce.kind
	}
	switch kind {
	case failUnavailable:
		f.slot.stats.unavailable.Add(1)
	case failTimeout:
		f.slot.stats.timeouts.Add(1)
	default:
		f.slot.stats.errors.Add(1)
	}
	return kind
}

// writeFailure is the closed answer: 503 when the plugin could not be
// reached, 500 when its call failed or timed out (as for WASM filters).
func writeFailure(w http.ResponseWriter, name string, kind failKind) {
	code, msg := http.StatusInternalServerError, "filter failed"
	if kind == failUnavailable {
		code, msg = http.StatusServiceUnavailable, "filter unavailable"
	}
	h := w.Header()
	h.Del("Content-Length")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = fmt.Fprintf(w, "sluice: %s %s\n", msg, name)
}

func checkReply(r *Reply) error {
	if r.Status < 200 || r.Status > 599 {
		return fmt.Errorf("reply status %d is outside 200..599", r.Status)
	}
	return nil
}

func writeReply(w http.ResponseWriter, r *Reply) {
	h := w.Header()
	for k, vs := range r.Header {
		h[http.CanonicalHeaderKey(k)] = vs
	}
	h.Del("Content-Length")
	if len(r.Body) > 0 {
		h.Set("Content-Length", strconv.Itoa(len(r.Body)))
	}
	w.WriteHeader(r.Status)
	if len(r.Body) > 0 {
		_, _ = w.Write(r.Body)
	}
}

// apply returns r changed by act; r itself is never modified.
func apply(r *http.Request, act *RequestAction) (*http.Request, error) {
	if act == nil || (act.Method == "" && act.URI == "" && len(act.SetHeader) == 0 && len(act.RemoveHeader) == 0) {
		return r, nil
	}
	out := r.WithContext(r.Context()) // shallow copy
	if act.Method != "" {
		if !validMethod(act.Method) {
			return nil, fmt.Errorf("method %q is not an HTTP token", act.Method)
		}
		out.Method = act.Method
	}
	if act.URI != "" {
		u, err := url.ParseRequestURI(act.URI)
		if err != nil || u.Host != "" || u.Scheme != "" || len(act.URI) == 0 || act.URI[0] != '/' {
			return nil, fmt.Errorf("uri %q is not an origin-form request target (/path?query)", act.URI)
		}
		out.URL = u
		out.RequestURI = act.URI
	}
	if len(act.SetHeader) > 0 || len(act.RemoveHeader) > 0 {
		out.Header = r.Header.Clone()
		for k, vs := range act.SetHeader {
			if !httpguts.ValidHeaderFieldName(k) {
				return nil, fmt.Errorf("header name %q is invalid", k)
			}
			for _, v := range vs {
				if !httpguts.ValidHeaderFieldValue(v) {
					return nil, fmt.Errorf("header %s: value %q is invalid", k, v)
				}
			}
			k = http.CanonicalHeaderKey(k)
			if k == "Host" {
				if len(vs) > 0 {
					out.Host = vs[0]
				}
				continue
			}
			out.Header[k] = vs
		}
		for _, k := range act.RemoveHeader {
			out.Header.Del(k)
		}
	}
	return out, nil
}

func validMethod(m string) bool {
	for i := 0; i < len(m); i++ {
		c := m[i]
		if c <= ' ' || c >= 0x7f || c == '(' || c == ')' || c == '<' || c == '>' || c == '@' || c == ',' || c == ';' ||
			c == ':' || c == '\\' || c == '"' || c == '/' || c == '[' || c == ']' || c == '?' || c == '=' || c == '{' || c == '}' {
			return false
		}
	}
	return m != ""
}

// responseWriter calls HandleResponse when the response head is written.
type responseWriter struct {
	w       http.ResponseWriter
	f       *RouteFilter
	p       *plugin
	ctx     context.Context
	state   []byte
	done    bool // head handled
	swallow bool // the closed failure answer replaced the response
}

func (rw *responseWriter) Header() http.Header { return rw.w.Header() }

func (rw *responseWriter) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		rw.w.WriteHeader(code) // informational: passes through
		return
	}
	rw.commit(code)
}

func (rw *responseWriter) commit(code int) {
	if rw.done {
		return
	}
	rw.done = true
	h := rw.w.Header()
	var act *ResponseAction
	var err error
	rw.p, err = rw.f.call(rw.ctx, rw.p, "response", func(ctx context.Context, pf Filter) error {
		var err error
		act, err = pf.HandleResponse(ctx, &Response{Status: code, Header: h, State: rw.state})
		return err
	})
	if err != nil {
		kind := rw.f.count(err)
		policy := rw.f.policy(rw.p)
		rw.p.log.Warn("plugin call failed", "error", err, "policy", policy.String())
		if policy == FailClosed {
			rw.f.slot.stats.failedShut.Add(1)
			rw.swallow = true
			for k := range h {
				delete(h, k)
			}
			writeFailure(rw.w, rw.f.slot.name, kind)
			return
		}
		rw.f.slot.stats.failedOpen.Add(1)
	}
	if act != nil {
		for k, vs := range act.SetHeader {
			h[http.CanonicalHeaderKey(k)] = vs
		}
		for _, k := range act.RemoveHeader {
			h.Del(k)
		}
	}
	rw.w.WriteHeader(code)
}

func (rw *responseWriter) Write(b []byte) (int, error) {
	rw.commit(http.StatusOK)
	if rw.swallow {
		return len(b), nil
	}
	return rw.w.Write(b)
}

// Flush commits the head and flushes, for streaming upstreams.
func (rw *responseWriter) Flush() {
	rw.commit(http.StatusOK)
	if fl, ok := rw.w.(http.Flusher); ok && !rw.swallow {
		fl.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (rw *responseWriter) Unwrap() http.ResponseWriter { return rw.w }

// Interface guards.
var (
	_ http.Handler        = (*handler)(nil)
	_ http.ResponseWriter = (*responseWriter)(nil)
	_ http.Flusher        = (*responseWriter)(nil)
)
