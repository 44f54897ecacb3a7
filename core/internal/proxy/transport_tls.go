package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
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

// upstreamTransports are the TLS transports: the default ones (no
// verification), and one per model.UpstreamTLS Key and HTTP version, made
// on first use. A keyed transport unused for tlsIdleEvict is closed and
// dropped when another one is made, so old settings do not pile up.
type upstreamTransports struct {
	opts  Options
	https *http.Transport // HTTP/1.1 over TLS
	h2tls *http.Transport // HTTP/2 over TLS (grpcs)

	mu    sync.Mutex
	keyed map[tlsKey]*keyedTransport
}

type tlsKey struct {
	key string
	h2  bool
}

type keyedTransport struct {
	t        *http.Transport
	err      error // the settings could not be loaded
	lastUsed atomic.Int64
}

const tlsIdleEvict = 10 * time.Minute

func newUpstreamTransports(opts Options) *upstreamTransports {
	return &upstreamTransports{opts: opts, https: newTLSTransport(opts, false), h2tls: newTLSTransport(opts, true)}
}

func (u *upstreamTransports) closeIdle() {
	if u == nil { // a zero Handler has none
		return
	}
	u.https.CloseIdleConnections()
	u.h2tls.CloseIdleConnections()
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, kt := range u.keyed {
		if kt.t != nil {
			kt.t.CloseIdleConnections()
		}
	}
}

// forTLS returns the transport for settings c over HTTP/2 (h2) or
// HTTP/1.1, or why there is none.
func (u *upstreamTransports) forTLS(c *model.UpstreamTLS, h2 bool) (*http.Transport, error) {
	now := time.Now().UnixNano()
	k := tlsKey{c.Key, h2}
	u.mu.Lock()
	defer u.mu.Unlock()
	kt := u.keyed[k]
	if kt == nil {
		for old, ot := range u.keyed {
			if now-ot.lastUsed.Load() > int64(tlsIdleEvict) {
				if ot.t != nil {
					ot.t.CloseIdleConnections()
				}
				delete(u.keyed, old)
			}
		}
		kt = &keyedTransport{}
		cfg, err := clientTLSConfig(c)
		if err != nil {
			kt.err = err
		} else {
			kt.t = newTLSTransport(u.opts, h2)
			kt.t.TLSClientConfig = cfg
		}
		if u.keyed == nil {
			u.keyed = make(map[tlsKey]*keyedTransport)
		}
		u.keyed[k] = kt
	}
	kt.lastUsed.Store(now)
	return kt.t, kt.err
}

// clientTLSConfig is the tls.Config for settings c. Without a ServerName,
// Verify checks the chain only (there is no name to check it against).
func clientTLSConfig(c *model.UpstreamTLS) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	if kp := c.ClientCert; kp != nil {
		cert, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
		if err != nil {
			return nil, fmt.Errorf("backend client certificate %s: %w", kp.Source, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if !c.Verify {
		cfg.InsecureSkipVerify = true //nolint:gosec // asked for: backend-tls-verify false
		return cfg, nil
	}
	var roots *x509.CertPool // nil: the system roots
	if c.CA != nil {
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(c.CA.PEM) {
			return nil, fmt.Errorf("backend CA %s: no certificate in ca.crt", c.CA.Source)
		}
	}
	cfg.RootCAs = roots
	if c.ServerName != "" {
		return cfg, nil
	}
	// No name to verify: check the chain in VerifyConnection instead.
	cfg.InsecureSkipVerify = true //nolint:gosec // the chain is verified below
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("backend sent no certificate")
		}
		opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool()}
		for _, ic := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(ic)
		}
		_, err := cs.PeerCertificates[0].Verify(opts)
		return err
	}
	return cfg, nil
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
func (h *Handler) pick(st *reqState, req *http.Request) (*http.Transport, error) {
	upgrade := req.Header.Get("Upgrade") != ""
	switch p := st.protocol(); p {
	case model.ProtocolH2C, model.ProtocolGRPC:
		if !upgrade {
			return h.h2c, nil
		}
	case model.ProtocolHTTPS, model.ProtocolGRPCS:
		h2 := p == model.ProtocolGRPCS && !upgrade
		if tr := st.traffic(); tr != nil && tr.UpstreamTLS != nil {
			return h.up.forTLS(tr.UpstreamTLS, h2)
		}
		if h2 {
			return h.up.h2tls, nil
		}
		return h.up.https, nil
	}
	return h.http1, nil
}
