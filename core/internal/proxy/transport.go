package proxy

import (
	"errors"
	"net"
	"net/http"
	"time"
)

// transport is the ReverseProxy's RoundTripper: it chooses the HTTP/1.1 or
// h2c transport by backend protocol, enforces the response header timeout,
// reports dial failures to passive health and retries once on another
// endpoint when that is safe.
type transport Handler

var _ http.RoundTripper = (*transport)(nil)

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	st := req.Context().Value(stateKey{}).(*reqState)
	rt, err := (*Handler)(t).pick(st, req) // transport_tls.go
	if err != nil {
		return nil, err
	}

	var timer *time.Timer
	if d := st.responseTimeout(); d > 0 && st.cancel != nil {
		timer = time.AfterFunc(d, func() { st.cancel(errResponseTimeout) })
	}
	req = st.watchSend(req) // traffic.go
	resp, err := t.roundTrip(rt, req, st)
	if timer != nil && !timer.Stop() {
		// The timeout fired: whatever came back is cut off.
		if resp != nil {
			resp.Body.Close()
		}
		return nil, errResponseTimeout
	}
	return st.watchRead(req, resp, err)
}

func (t *transport) roundTrip(rt *http.Transport, req *http.Request, st *reqState) (*http.Response, error) {
	pool := st.res.Pool
	for attempt := 0; ; attempt++ {
		resp, err := rt.RoundTrip(req)
		if err == nil {
			pool.Succeeded(st.ep)
			return resp, nil
		}
		if !isDialError(err) {
			return nil, err
		}
		pool.Failed(st.ep)
		if attempt > 0 || !retryable(req) || req.Context().Err() != nil {
			return nil, err
		}
		next := pool.Pick(st.ep)
		if next == st.ep {
			next.Done() // the only endpoint
			return nil, err
		}
		retry := req.Clone(req.Context())
		if req.GetBody != nil {
			body, gerr := req.GetBody()
			if gerr != nil {
				next.Done()
				return nil, err
			}
			retry.Body = body
		}
		st.ep.Done()
		st.ep = next
		retry.URL.Host = next.Addr()
		req = retry
	}
}

// isDialError reports whether err means the connection was never made, so
// the request never reached the upstream.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// retryable reports whether a request may be sent again after a dial
// failure: an idempotent method, and no body or a replayable one.
func retryable(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
	default:
		return false
	}
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}
