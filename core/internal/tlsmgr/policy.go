package tlsmgr

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
)

// Verify is how a host asks for client certificates.
type Verify string

// Verify modes (the nginx ssl_verify_client values).
const (
	// VerifyOn requires a client certificate that chains to the host's CAs.
	VerifyOn Verify = "on"
	// VerifyOptional asks for one; if sent, it must chain to the CAs.
	VerifyOptional Verify = "optional"
	// VerifyOptionalNoCA asks for one and accepts any, unverified.
	VerifyOptionalNoCA Verify = "optional_no_ca"
	// VerifyOff asks for none.
	VerifyOff Verify = "off"
)

// ParseVerify parses a verify mode; "" is VerifyOff.
func ParseVerify(s string) (Verify, error) {
	switch v := Verify(s); v {
	case VerifyOn, VerifyOptional, VerifyOptionalNoCA, VerifyOff:
		return v, nil
	case "":
		return VerifyOff, nil
	}
	return "", fmt.Errorf("%q is not one of on, optional, optional_no_ca, off", s)
}

// ClientAuth is one host's mTLS policy.
type ClientAuth struct {
	Verify Verify
	// CAs verify client certificates; required for on and optional.
	CAs *x509.CertPool
	// Depth is the most CA certificates above the client certificate in a
	// verified chain; 0 means 1.
	Depth int
	// CRLs revoke client (or intermediate) certificates. Each must be
	// signed by one of the CAs; NewPolicies checks that.
	CRLs []*x509.RevocationList
}

// Enabled reports whether the policy asks for a client certificate.
func (c ClientAuth) Enabled() bool { return c.Verify != "" && c.Verify != VerifyOff }

// HostPolicy is everything per host that the TLS layer and the HTTP(S)
// handlers need.
type HostPolicy struct {
	ClientAuth ClientAuth
	// TLS is true for hosts an Ingress lists in spec.tls.
	TLS bool
	// Redirect sends plain HTTP requests to HTTPS (308).
	Redirect bool
	// HSTS is the Strict-Transport-Security value; "" sends none.
	HSTS string
}

// Policies maps host names to policies, with prebuilt tls.Configs for the
// mTLS hosts. Immutable once built; safe for concurrent use.
type Policies struct {
	exact map[string]*entry
	wild  map[string]*entry // "example.com" for "*.example.com"
}

type entry struct {
	policy HostPolicy
	config *tls.Config // nil: the listener's own config
}

// NewPolicies builds the policies of hosts ("a.example.com",
// "*.example.com"; "" is the catch-all and has no TLS policy). base is the
// listener's tls.Config: each mTLS host gets a clone of it. The error names
// every host whose client policy cannot work (no CAs for on/optional, a bad
// verify mode); those hosts refuse every client certificate (fail closed),
// the others are built as asked.
func NewPolicies(base *tls.Config, hosts map[string]HostPolicy) (*Policies, error) {
	p := &Policies{exact: map[string]*entry{}, wild: map[string]*entry{}}
	var errs []error
	for host, hp := range hosts {
		host = normalize(host)
		if host == "" {
			continue
		}
		e := &entry{policy: hp}
		if hp.ClientAuth.Enabled() {
			cfg, err := mtlsConfig(base, hp.ClientAuth)
			if err != nil {
				// Fail closed: the host keeps asking for a certificate
				// and no CA can verify one.
				errs = append(errs, fmt.Errorf("host %s: %w; every client certificate is refused", host, err))
				cfg = refuseAll(base)
			}
			e.config = cfg
		}
		if b, ok := strings.CutPrefix(host, "*."); ok {
			p.wild[b] = e
		} else {
			p.exact[host] = e
		}
	}
	return p, errors.Join(errs...)
}

// Lookup returns the policy of host (exact, then one-label wildcard), or
// nil. host is a server name or a Host header without port.
func (p *Policies) Lookup(host string) *HostPolicy {
	if e := p.lookup(host); e != nil {
		return &e.policy
	}
	return nil
}

func (p *Policies) lookup(host string) *entry {
	if p == nil {
		return nil
	}
	host = normalize(host)
	if e := p.exact[host]; e != nil {
		return e
	}
	if _, parent, ok := strings.Cut(host, "."); ok {
		return p.wild[parent]
	}
	return nil
}

// ConfigForClient is the tls.Config.GetConfigForClient of the listener: the
// SNI's mTLS config, or nil (the listener's config) for hosts without mTLS
// and for TLS-ALPN-01 validation handshakes, which never carry a client
// certificate.
func (p *Policies) ConfigForClient(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	if isACMEChallenge(hello) {
		return nil, nil
	}
	if e := p.lookup(hello.ServerName); e != nil {
		return e.config, nil
	}
	return nil, nil
}

func refuseAll(base *tls.Config) *tls.Config {
	cfg := base.Clone()
	cfg.GetConfigForClient = nil
	cfg.SessionTicketsDisabled = true
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	cfg.ClientCAs = x509.NewCertPool()
	return cfg
}

func mtlsConfig(base *tls.Config, ca ClientAuth) (*tls.Config, error) {
	cfg := base.Clone()
	cfg.GetConfigForClient = nil
	// Why: a resumed session skips the client certificate check, and the
	// ticket may come from a host with another policy.
	cfg.SessionTicketsDisabled = true
	switch ca.Verify {
	case VerifyOn:
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	case VerifyOptional:
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	case VerifyOptionalNoCA:
		cfg.ClientAuth = tls.RequestClientCert
		return cfg, nil
	default:
		return nil, fmt.Errorf("verify mode %q", ca.Verify)
	}
	if ca.CAs == nil {
		return nil, fmt.Errorf("verify %s needs a client CA bundle", ca.Verify)
	}
	cfg.ClientCAs = ca.CAs
	depth := ca.Depth
	if depth <= 0 {
		depth = 1
	}
	revoked := map[string]bool{}
	for i, crl := range ca.CRLs {
		for _, rc := range crl.RevokedCertificateEntries {
			revoked[string(crl.RawIssuer)+"/"+rc.SerialNumber.String()] = true
		}
		if len(crl.RawIssuer) == 0 {
			return nil, fmt.Errorf("crl[%d]: no issuer", i)
		}
	}
	crls := ca.CRLs
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return nil // optional, and none sent
		}
		var last error
		for _, chain := range cs.VerifiedChains {
			if err := checkChain(chain, depth, crls, revoked); err != nil {
				last = err
				continue
			}
			return nil
		}
		if last == nil {
			last = errors.New("client certificate not verified")
		}
		return last
	}
	return cfg, nil
}

// checkChain applies depth and revocation to one verified chain
// (leaf first, root last).
func checkChain(chain []*x509.Certificate, depth int, crls []*x509.RevocationList, revoked map[string]bool) error {
	if len(chain)-1 > depth {
		return fmt.Errorf("client certificate chain has %d CA certificates, more than verify depth %d", len(chain)-1, depth)
	}
	for i, c := range chain[:len(chain)-1] {
		issuer := chain[i+1]
		for _, crl := range crls {
			if string(crl.RawIssuer) != string(c.RawIssuer) || crl.CheckSignatureFrom(issuer) != nil {
				continue
			}
			if revoked[string(crl.RawIssuer)+"/"+c.SerialNumber.String()] {
				return fmt.Errorf("client certificate %q (serial %s) is revoked", c.Subject.CommonName, c.SerialNumber)
			}
		}
	}
	return nil
}
