package proxy

import (
	"crypto/tls"
	"net/http"
	"time"

	"github.com/sluicegw/sluice/core/internal/model"
)

// newTLSTransport is newTransport for TLS upstreams: HTTP/1.1 over TLS
// (backend protocol https) or HTTP/2 over TLS only (grpcs).
//
// The upstream's certificate is not verified and no SNI is sent, as
// ingress-nginx does by default (proxy_ssl_verify off): in-cluster
// backends mostly present self-signed certificates for names that are not
// the Pod address dialled. See RATIONALE.nginx-backend.md.
func newTLSTransport(opts Options, h2 bool) *http.Transport {
	t := newTransport(opts, false)
	t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12} //nolint:gosec // ingress-nginx's default; see above
	t.TLSHandshakeTimeout = 10 * time.Second
	t.Protocols = new(http.Protocols)
	if h2 {
		t.Protocols.SetHTTP2(true)
	} else {
		t.Protocols.SetHTTP1(true)
	}
	return t
}

// upstreamTransports are the transports by backend protocol.
type upstreamTransports struct {
	https *http.Transport // HTTP/1.1 over TLS
	h2tls *http.Transport // HTTP/2 over TLS (grpcs)
}

func newUpstreamTransports(opts Options) upstreamTransports {
	return upstreamTransports{https: newTLSTransport(opts, false), h2tls: newTLSTransport(opts, true)}
}

func (u upstreamTransports) closeIdle() {
	for _, t := range []*http.Transport{u.https, u.h2tls} {
		if t != nil { // a zero Handler has none
			t.CloseIdleConnections()
		}
	}
}

// protocol is the protocol the request's route speaks to its backend:
// the route's backend-protocol, else the Backend's.
func (st *reqState) protocol() model.Protocol {
	if r := st.res.Route; r != nil && r.Traffic != nil && r.Traffic.Protocol != "" {
		return r.Traffic.Protocol
	}
	return st.res.Backend.Protocol
}

// scheme is the upstream URL scheme of the request.
func (st *reqState) scheme() string {
	switch st.protocol() {
	case model.ProtocolHTTPS, model.ProtocolGRPCS:
		return "https"
	}
	return "http"
}

// pick chooses the transport for req. HTTP/2 has no Upgrade: WebSockets to
// an h2c backend use HTTP/1.1, to a grpcs one HTTP/1.1 over TLS.
func (h *Handler) pick(st *reqState, req *http.Request) *http.Transport {
	upgrade := req.Header.Get("Upgrade") != ""
	switch st.protocol() {
	case model.ProtocolH2C, model.ProtocolGRPC:
		if !upgrade {
			return h.h2c
		}
	case model.ProtocolHTTPS:
		return h.up.https
	case model.ProtocolGRPCS:
		if !upgrade {
			return h.up.h2tls
		}
		return h.up.https
	}
	return h.http1
}
