// Package model holds the immutable result of translation: the Snapshot that
// the data plane serves. It has no behaviour beyond small helpers and depends
// on no Kubernetes types, so every stage after translate can be tested with
// plain values.
//
// # Notes
//
//   - A Snapshot and everything it points to is never modified after
//     translate returns it. Readers may share it across goroutines freely.
//   - JSON tags exist for golden files and the admin API; field order is the
//     order humans read in.
package model

import (
	"encoding/json"
	"fmt"
	"time"
)

// ObjectRef names a Kubernetes object.
type ObjectRef struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// String returns "Kind namespace/name", the form used in every warning.
func (o ObjectRef) String() string {
	if o.Namespace == "" {
		return o.Kind + " " + o.Name
	}
	return o.Kind + " " + o.Namespace + "/" + o.Name
}

// Warning is a problem with one object that did not stop the build. The
// object's valid parts (and every other object) are still served.
type Warning struct {
	Object ObjectRef `json:"object"`
	// Message is lowercase, precise, and names the field at fault, e.g.
	// `spec.rules[0].http.paths[1].path: "foo" must start with "/"`.
	Message string `json:"message"`
}

func (w Warning) String() string { return fmt.Sprintf("%s: %s", w.Object, w.Message) }

// Snapshot is everything the data plane needs to serve, built by translate.
type Snapshot struct {
	// Hosts is sorted by Name. Name "" holds the rules written without a host
	// (they match any Host header that no other VirtualHost matches).
	Hosts []*VirtualHost `json:"hosts"`
	// DefaultBackend answers requests that match no rule; nil means 404.
	DefaultBackend *Backend `json:"defaultBackend,omitempty"`
	// Certificates are the static certificates, sorted by Source.
	Certificates []*Certificate `json:"certificates,omitempty"`
}

// VirtualHost is one host name and its routes.
type VirtualHost struct {
	// Name is an exact host ("foo.example.com"), a wildcard of exactly one
	// label ("*.example.com"), or "" for any host.
	Name string `json:"name"`
	// Routes are in match precedence order: longer Path first; on equal
	// length Exact, then Regex, then Prefix (route.Table matches Exact
	// first, then Regex and Prefix by the length of the path as written).
	Routes []*Route `json:"routes"`
	// TLS is true when an Ingress lists this host in spec.tls.
	TLS bool `json:"tls,omitempty"`
	// TLSPolicy holds the host's sluice.io/ TLS annotations (client
	// certificates, redirect, HSTS, on-demand); nil means the config file's
	// defaults for all of them.
	TLSPolicy *HostTLS `json:"tlsPolicy,omitempty"`
}

// HostTLS is a host's TLS settings from annotations. A nil field keeps the
// config file's default.
type HostTLS struct {
	// Source is the Ingress the settings come from (the oldest one that
	// sets any, when several route the host).
	Source ObjectRef `json:"source"`
	// ClientVerify is on | optional | optional_no_ca | off.
	ClientVerify string `json:"clientVerify,omitempty"`
	// ClientVerifyDepth is the most CA certificates above a client
	// certificate; 0 keeps the default.
	ClientVerifyDepth int `json:"clientVerifyDepth,omitempty"`
	// ClientCA is the client CA bundle, from a Secret's ca.crt.
	ClientCA *CABundle `json:"clientCA,omitempty"`
	// Redirect sends HTTP to HTTPS (308) for this host.
	Redirect *bool `json:"redirect,omitempty"`
	// HSTSMaxAge is the Strict-Transport-Security max-age; 0 sends none.
	HSTSMaxAge *time.Duration `json:"hstsMaxAge,omitempty"`
	// OnDemand false keeps on-demand issuance off for this host.
	OnDemand *bool `json:"onDemand,omitempty"`
}

// CABundle is a set of CA certificates (and optional CRL) from a Secret.
type CABundle struct {
	Source ObjectRef `json:"source"`
	PEM    []byte    `json:"-"` // the Secret's ca.crt
	CRLPEM []byte    `json:"-"` // the Secret's ca.crl, if any
}

// PathType is the effective match type of a route.
type PathType string

const (
	// PathExact matches the whole URL path, case-sensitively.
	PathExact PathType = "Exact"
	// PathPrefix matches element-wise on "/" (trailing slash ignored).
	PathPrefix PathType = "Prefix"
)

// Route is one path rule of one host.
type Route struct {
	PathType PathType `json:"pathType"`
	// Path as written in the Ingress. For Prefix, "/foo/" and "/foo" are the
	// same rule; translate keeps the first written form.
	Path    string    `json:"path"`
	Backend *Backend  `json:"backend"`
	Source  ObjectRef `json:"source"`
	// Filters run in order before the backend (sluice.io/filters).
	Filters []FilterRef `json:"filters,omitempty"`
	// FilterError, when set, says why the route's filter chain is invalid:
	// the route answers 503 instead of running without its filters.
	FilterError string `json:"filterError,omitempty"`
	// Rewrite, when set, replaces the path sent upstream (ingress-nginx
	// rewrite-target): "$1".."$9" are the groups of a PathRegex match; a
	// "?" starts a query that comes before the request's own.
	Rewrite string `json:"rewrite,omitempty"`
	// Redirect, when set, answers every request of the route (routing.go).
	Redirect *Redirect `json:"redirect,omitempty"`
	// AppRoot, when set, answers the request path "/" with a 302 to this
	// path on the same scheme and host (ingress-nginx app-root).
	AppRoot string `json:"appRoot,omitempty"`
	// CORS, when set, answers preflight requests and adds the
	// Access-Control-* headers to the others.
	CORS *CORS `json:"cors,omitempty"`
	// Canary, when set, is another Ingress's backend taken instead of
	// Backend for some requests.
	Canary *Canary `json:"canary,omitempty"`
	// Traffic is the route's per-Ingress traffic policy (traffic.go); nil
	// means the Backend's and the config file's defaults.
	Traffic *Traffic `json:"traffic,omitempty"`
}

// ID is the route's identity wherever one is shown: the metrics' route
// label, what filters read with sluice.route, the access log. It is
// "namespace/ingress host PathType path" for a rule of virtual host host
// ("*" when the rule has no host), e.g. "default/web shop.example Prefix
// /cart". Two routes of one snapshot never share it (translate keeps one
// route per host, path type and path).
func (r *Route) ID(host string) string {
	if host == "" {
		host = "*"
	}
	src := r.Source.Name
	if r.Source.Namespace != "" {
		src = r.Source.Namespace + "/" + src
	}
	return src + " " + host + " " + string(r.PathType) + " " + r.Path
}

// FilterRef is one entry of a route's filter chain, as the annotation
// wrote it. Name alone refers to a built-in or to a filter named in the
// config file; Module makes it inline.
type FilterRef struct {
	Name string `json:"name"`
	// Module is "file:///path", "https://…" (SHA256 required) or
	// "builtin:NAME"; empty for a reference by name.
	Module string `json:"module,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	// Config is the filter's config as JSON (from YAML or JSON in the
	// annotation); nil when absent.
	Config json.RawMessage `json:"config,omitempty"`
	// Fail is "closed", "open", or "" (the filter's default).
	Fail string `json:"fail,omitempty"`
}

// Protocol is how the gateway talks to a backend.
type Protocol string

const (
	ProtocolHTTP Protocol = "http" // HTTP/1.1
	ProtocolH2C  Protocol = "h2c"  // HTTP/2 over cleartext (appProtocol kubernetes.io/h2c)
	// ProtocolHTTPS is HTTP/1.1 over TLS; ProtocolGRPC is h2c and
	// ProtocolGRPCS HTTP/2 over TLS (ingress-nginx backend-protocol).
	ProtocolHTTPS Protocol = "https"
	ProtocolGRPC  Protocol = "grpc"
	ProtocolGRPCS Protocol = "grpcs"
)

// Balancer names a load-balancing policy.
type Balancer string

const (
	BalancerRoundRobin   Balancer = "round_robin"
	BalancerLeastRequest Balancer = "least_request" // power of two choices
)

// Backend is a Service port resolved to its ready endpoints.
type Backend struct {
	// Name is "namespace/service:port" with the port as referenced (number or
	// name). It is the identity of the upstream pool: pools (and their health
	// state) are reused across snapshots by Name.
	Name      string    `json:"name"`
	Service   ObjectRef `json:"service"`
	Protocol  Protocol  `json:"protocol"`
	Balancer  Balancer  `json:"balancer"`
	Endpoints []string  `json:"endpoints"` // "ip:port", ready only, sorted; empty means 503
	Timeouts  Timeouts  `json:"timeouts"`
}

// Timeouts for talking to a backend. Zero means no limit.
type Timeouts struct {
	Connect  time.Duration `json:"connect"`
	Response time.Duration `json:"response"` // until the response headers arrive
}

// Certificate is a static certificate from a kubernetes.io/tls Secret.
type Certificate struct {
	Source ObjectRef `json:"source"`
	// Hosts are the names the Ingresses' spec.tls sections list for this
	// Secret, sorted. The certificate is also offered for its own SANs.
	Hosts    []string  `json:"hosts"`
	NotAfter time.Time `json:"notAfter"`
	CertPEM  []byte    `json:"-"`
	KeyPEM   []byte    `json:"-"`
}
