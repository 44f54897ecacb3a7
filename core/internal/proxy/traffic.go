package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/sluicegw/sluice/core/internal/model"
)

// This file applies a route's model.Traffic: source ranges (403), the
// body size limit (413), requests in flight per client (503), and the
// connect, read and send timeouts (504).

func noRelease() {}

// admit applies the route's traffic policy before its filters and its
// backend see r: 403 for a client outside its source ranges, 413 for a
// declared body over the limit, 503 over the requests in flight per
// client. A body of unknown length is limited while it streams
// (limitedBody). When admit answers it returns false; otherwise release
// must be called when the response is done.
func (h *Handler) admit(w http.ResponseWriter, r *http.Request, st *reqState) (release func(), ok bool) {
	rt := st.res.Route
	if rt == nil || rt.Traffic == nil {
		return noRelease, true
	}
	tr := rt.Traffic
	var client netip.Addr
	if len(tr.AllowSources) > 0 || len(tr.DenySources) > 0 || tr.MaxConnsPerClient > 0 {
		client = h.clientAddr(r)
	}
	if !allowedSource(client, tr.AllowSources, tr.DenySources) {
		plainError(w, http.StatusForbidden, "forbidden: the client address is not allowed on this route")
		return nil, false
	}
	if n := tr.MaxBodyBytes; n > 0 {
		if r.ContentLength > n {
			plainError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body too large: the limit is %d bytes", n))
			return nil, false
		}
		if r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody {
			r.Body = &limitedBody{rc: r.Body, left: n}
		}
	}
	if max := tr.MaxConnsPerClient; max > 0 {
		k := connKey{rt.Source, client}
		if !h.inflight.acquire(k, max) {
			plainError(w, http.StatusServiceUnavailable, fmt.Sprintf("too many requests in flight from this client (limit %d)", max))
			return nil, false
		}
		return func() { h.inflight.release(k) }, true
	}
	return noRelease, true
}

// errBodyTooLarge is what a limitedBody returns past its limit.
var errBodyTooLarge = errors.New("request body too large")

// limitedBody is a request body of unknown length (chunked) with a size
// limit. Past the limit, Read fails: the transport aborts the upstream
// request (which never sees a complete body) and trafficError answers
// 413.
type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, errBodyTooLarge
	}
	if int64(len(p)) > b.left {
		p = p[:b.left+1] // one byte more tells "at the limit" from "over it"
	}
	n, err := b.rc.Read(p)
	if int64(n) > b.left {
		b.left = -1
		return 0, errBodyTooLarge
	}
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// trafficError answers a failed round trip that the traffic policy caused
// (a body over the limit: 413). It reports whether it answered.
func (h *Handler) trafficError(w http.ResponseWriter, r *http.Request, err error) bool {
	if !errors.Is(err, errBodyTooLarge) {
		return false
	}
	st := r.Context().Value(stateKey{}).(*reqState)
	st.status = http.StatusRequestEntityTooLarge
	plainError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body too large: the limit is %d bytes", st.traffic().MaxBodyBytes))
	return true
}

// connKey counts one client's requests in flight on the routes of one
// Ingress (ingress-nginx keeps one limit_conn zone per Ingress). The key
// is the Ingress, not a *model.Route, so counts survive a new route table.
type connKey struct {
	ingress model.ObjectRef
	client  netip.Addr
}

// inflight counts requests in flight per Ingress and client. The zero value
// is ready; it is safe for concurrent use and holds only keys with
// requests in flight.
type inflight struct {
	mu sync.Mutex
	n  map[connKey]int
}

func (c *inflight) acquire(k connKey, max int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[k] >= max {
		return false
	}
	if c.n == nil {
		c.n = make(map[connKey]int)
	}
	c.n[k]++
	return true
}

func (c *inflight) release(k connKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[k] <= 1 {
		delete(c.n, k)
		return
	}
	c.n[k]--
}

// timeoutError is a net.Error whose Timeout is true: proxyError answers
// it with 504.
type timeoutError string

func (e timeoutError) Error() string   { return string(e) }
func (e timeoutError) Timeout() bool   { return true }
func (e timeoutError) Temporary() bool { return true }

var (
	errSendTimeout error = timeoutError("upstream send timeout: the request body was not taken in time")
	errReadTimeout error = timeoutError("upstream read timeout: no response data in time")
)

func (st *reqState) traffic() *model.Traffic {
	if r := st.res.Route; r != nil && r.Traffic != nil {
		return r.Traffic
	}
	return nil
}

// connectTimeout is the route's connect timeout, else the Backend's.
func (st *reqState) connectTimeout() time.Duration {
	if tr := st.traffic(); tr != nil && tr.ConnectTimeout > 0 {
		return tr.ConnectTimeout
	}
	return st.res.Backend.Timeouts.Connect
}

// responseTimeout bounds the wait for the response headers: the route's
// read timeout, else the Backend's response timeout.
func (st *reqState) responseTimeout() time.Duration {
	if tr := st.traffic(); tr != nil && tr.ReadTimeout > 0 {
		return tr.ReadTimeout
	}
	return st.res.Backend.Timeouts.Response
}

// needsCancel reports whether a timeout may cancel the upstream request.
func (st *reqState) needsCancel() bool {
	tr := st.traffic()
	return st.responseTimeout() > 0 || tr != nil && (tr.SendTimeout > 0 || tr.ReadTimeout > 0)
}

// watchSend returns req with its body under the route's send timeout:
// the time between two writes of the body upstream (from one Read
// returning to the transport's next Read) is bounded. The time spent
// waiting for the client is not counted.
func (st *reqState) watchSend(req *http.Request) *http.Request {
	tr := st.traffic()
	if tr == nil || tr.SendTimeout <= 0 || st.cancel == nil || req.Body == nil || req.Body == http.NoBody {
		return req
	}
	out := req.WithContext(req.Context())
	out.Body = &watchedBody{rc: req.Body, d: tr.SendTimeout, t: stoppedTimer(func() { st.cancel(errSendTimeout) })}
	return out
}

// watchRead puts the response body under the route's read timeout: each
// read from the upstream must return within it. It also turns a round
// trip that the send timeout cut off into errSendTimeout.
func (st *reqState) watchRead(req *http.Request, resp *http.Response, err error) (*http.Response, error) {
	if err != nil {
		if c := context.Cause(req.Context()); errors.Is(c, errSendTimeout) {
			return nil, errSendTimeout
		}
		return nil, err
	}
	tr := st.traffic()
	// A 101's body is the upgraded connection, which ReverseProxy needs
	// as it is (an io.ReadWriteCloser).
	if tr == nil || tr.ReadTimeout <= 0 || st.cancel == nil || resp.StatusCode == http.StatusSwitchingProtocols {
		return resp, nil
	}
	resp.Body = &readWatch{rc: resp.Body, d: tr.ReadTimeout, t: stoppedTimer(func() { st.cancel(errReadTimeout) })}
	return resp, nil
}

func stoppedTimer(f func()) *time.Timer {
	t := time.AfterFunc(time.Hour, f)
	t.Stop()
	return t
}

// watchedBody arms its timer between Reads (while the transport writes).
type watchedBody struct {
	rc io.ReadCloser
	d  time.Duration
	t  *time.Timer
}

func (b *watchedBody) Read(p []byte) (int, error) {
	b.t.Stop()
	n, err := b.rc.Read(p)
	if err == nil {
		b.t.Reset(b.d)
	}
	return n, err
}

func (b *watchedBody) Close() error {
	b.t.Stop()
	return b.rc.Close()
}

// readWatch arms its timer during each Read (while waiting for the
// upstream), not while the proxy writes to the client.
type readWatch struct {
	rc io.ReadCloser
	d  time.Duration
	t  *time.Timer
}

func (b *readWatch) Read(p []byte) (int, error) {
	b.t.Reset(b.d)
	n, err := b.rc.Read(p)
	b.t.Stop()
	return n, err
}

func (b *readWatch) Close() error {
	b.t.Stop()
	return b.rc.Close()
}
