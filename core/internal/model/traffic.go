package model

import (
	"net/netip"
	"time"
)

// Traffic is one route's traffic policy, from the annotations of the
// Ingress that routes it (sluice.io/backend-protocol, max-body-size,
// *-timeout, allow-/deny-source-range, limit-connections and their
// ingress-nginx twins). It lives on the Route, not the Backend: the
// Backend (and its upstream pool) is shared by every Ingress that names
// the same Service port, these settings are not. A zero field keeps the
// default.
type Traffic struct {
	// Protocol overrides Backend.Protocol for this route; "" keeps it.
	Protocol Protocol `json:"protocol,omitempty"`
	// MaxBodyBytes answers 413 to request bodies larger than this; 0 is
	// no limit.
	MaxBodyBytes int64 `json:"maxBodyBytes,omitempty"`
	// ConnectTimeout overrides Backend.Timeouts.Connect.
	ConnectTimeout time.Duration `json:"connectTimeout,omitempty"`
	// ReadTimeout bounds the wait for the response headers (overriding
	// Backend.Timeouts.Response) and between two reads of the response
	// body.
	ReadTimeout time.Duration `json:"readTimeout,omitempty"`
	// SendTimeout bounds the time between two writes of the request body
	// to the upstream.
	SendTimeout time.Duration `json:"sendTimeout,omitempty"`
	// AllowSources, when non-empty, are the only client addresses served;
	// others get 403. DenySources get 403 and win over AllowSources.
	AllowSources []netip.Prefix `json:"allowSources,omitempty"`
	DenySources  []netip.Prefix `json:"denySources,omitempty"`
	// MaxConnsPerClient limits the requests in flight per client address
	// on this route (503 above it); 0 is no limit.
	MaxConnsPerClient int `json:"maxConnsPerClient,omitempty"`
	// UpstreamTLS configures TLS to the backend (protocols https and
	// grpcs); nil means no verification, no SNI, no client certificate.
	UpstreamTLS *UpstreamTLS `json:"upstreamTLS,omitempty"`
}

// UpstreamTLS is how the gateway checks a TLS backend and presents itself
// to it.
type UpstreamTLS struct {
	// Verify checks the backend's certificate chain against CA (the
	// system roots when CA is nil) and its name against ServerName.
	Verify bool      `json:"verify,omitempty"`
	CA     *CABundle `json:"ca,omitempty"`
	// ServerName is sent as SNI and, with Verify, must be in the
	// certificate; "" sends no SNI.
	ServerName string `json:"serverName,omitempty"`
	// ClientCert, when set, is presented to the backend.
	ClientCert *KeyPair `json:"clientCert,omitempty"`
	// Key is the same for equal settings and differs otherwise: the proxy
	// keeps one transport (and connection pool) per Key.
	Key string `json:"-"`
}

// KeyPair is a certificate and its private key from a Secret's tls.crt
// and tls.key.
type KeyPair struct {
	Source  ObjectRef `json:"source"`
	CertPEM []byte    `json:"-"`
	KeyPEM  []byte    `json:"-"`
}
