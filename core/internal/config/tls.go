package config

import (
	"net"
	"net/url"
	"strings"
	"time"
)

// TLS configures certificates and client authentication: which issuer makes
// the managed certificates, where they are stored, on-demand issuance, and
// the per-host defaults that sluice.io/ annotations override.
type TLS struct {
	// Issuer makes managed certificates: "local" (a CA kept in Storage, the
	// default: works without internet) or "acme".
	Issuer string `koanf:"issuer"`
	// Storage is the folder of certmagic's file storage. Empty means
	// $XDG_DATA_HOME/sluice (or ~/.local/share/sluice).
	Storage string `koanf:"storage"`
	// Hosts are managed besides the spec.tls hosts of the Ingresses: a
	// certificate is kept for each, without redirecting HTTP to HTTPS.
	Hosts []string `koanf:"hosts"`
	// DefaultServerName picks the certificate for handshakes without SNI
	// when no static certificate is the default.
	DefaultServerName string `koanf:"default_server_name"`
	// Certificates are static certificates from files, for their own
	// names (SANs); Secrets named by Ingresses come first.
	Certificates []CertFile `koanf:"certificates"`

	ACME     ACME     `koanf:"acme"`
	OnDemand OnDemand `koanf:"on_demand"`
	// ClientAuth is the mTLS default of every host; the sluice.io/client-*
	// annotations override it per host.
	ClientAuth ClientAuth `koanf:"client_auth"`
	// Redirect sends HTTP requests for hosts with TLS to HTTPS (308).
	Redirect Redirect `koanf:"redirect"`
	// HSTS adds Strict-Transport-Security to HTTPS answers when MaxAge > 0.
	HSTS HSTS `koanf:"hsts"`
}

// CertFile is a PEM certificate (chain) and its key.
type CertFile struct {
	Cert string `koanf:"cert"`
	Key  string `koanf:"key"`
}

// ACME configures the ACME issuer (tls.issuer: acme).
type ACME struct {
	// CA is the directory URL, e.g. https://acme-v02.api.letsencrypt.org/directory.
	CA    string `koanf:"ca"`
	Email string `koanf:"email"`
	// TrustedRoots is a PEM file of roots to trust for the CA's own API
	// (a private CA); empty means the system roots.
	TrustedRoots string `koanf:"trusted_roots"`
	EAB          EAB    `koanf:"eab"`
	// PreferredChains picks among the chains the CA offers.
	PreferredChains PreferredChains `koanf:"preferred_chains"`
	// DisableHTTPChallenge and DisableTLSALPNChallenge turn one challenge
	// type off (both off is an error).
	DisableHTTPChallenge    bool `koanf:"disable_http_challenge"`
	DisableTLSALPNChallenge bool `koanf:"disable_tlsalpn_challenge"`
}

// EAB is the external account binding some CAs require.
type EAB struct {
	KeyID  string `koanf:"key_id"`
	MACKey string `koanf:"mac_key"` // base64url, as the CA hands it out
}

// PreferredChains selects the chain by the common name of its root or of
// any certificate in it, or the smallest one.
type PreferredChains struct {
	RootCommonName []string `koanf:"root_common_name"`
	AnyCommonName  []string `koanf:"any_common_name"`
	Smallest       bool     `koanf:"smallest"`
}

// OnDemand configures on-demand issuance: a handshake for a name without a
// certificate obtains one if the route table serves the name or Ask says so.
type OnDemand struct {
	Enabled bool `koanf:"enabled"`
	// Ask is an optional URL asked GET ?domain=NAME; 200 means allowed.
	Ask  string `koanf:"ask"`
	Rate Rate   `koanf:"rate"`
}

// Rate is a token bucket: at most Burst issuances at once, refilled at
// Burst per Interval.
type Rate struct {
	Burst    int           `koanf:"burst"`
	Interval time.Duration `koanf:"interval"`
}

// ClientAuth is an mTLS policy.
type ClientAuth struct {
	// Verify is on | optional | optional_no_ca | off.
	Verify string `koanf:"verify"`
	// CA is a PEM file of the client CAs.
	CA string `koanf:"ca"`
	// CRL is an optional PEM file of revocation lists signed by those CAs.
	CRL string `koanf:"crl"`
	// Depth is the most CA certificates above the client certificate in a
	// verified chain (as nginx's ssl_verify_depth).
	Depth int `koanf:"depth"`
}

// Redirect configures the HTTP → HTTPS redirect.
type Redirect struct {
	Enabled bool `koanf:"enabled"`
	// Port is the HTTPS port written in the Location; 0 means the port of
	// https_addr, 443 writes none.
	Port int `koanf:"port"`
}

// HSTS configures Strict-Transport-Security.
type HSTS struct {
	MaxAge            time.Duration `koanf:"max_age"`
	IncludeSubdomains bool          `koanf:"include_subdomains"`
}

// Verify modes of ClientAuth.Verify.
const (
	VerifyOn           = "on"
	VerifyOptional     = "optional"
	VerifyOptionalNoCA = "optional_no_ca"
	VerifyOff          = "off"
)

func defaultTLS() TLS {
	return TLS{
		Issuer:     "local",
		OnDemand:   OnDemand{Rate: Rate{Burst: 10, Interval: time.Minute}},
		ClientAuth: ClientAuth{Verify: VerifyOff, Depth: 1},
		Redirect:   Redirect{Enabled: true},
	}
}

// validate reports every bad tls.* value through bad.
func (t *TLS) validate(bad func(key, format string, args ...any)) {
	switch t.Issuer {
	case "local":
	case "acme":
		if t.ACME.CA == "" {
			bad("tls.acme.ca", "must be set when tls.issuer is acme")
		}
	default:
		bad("tls.issuer", "%q is not one of local, acme", t.Issuer)
	}
	if t.ACME.CA != "" {
		if u, err := url.Parse(t.ACME.CA); err != nil || u.Scheme != "https" || u.Host == "" {
			bad("tls.acme.ca", "%q is not an https:// URL", t.ACME.CA)
		}
	}
	if t.ACME.Email != "" && !strings.Contains(t.ACME.Email, "@") {
		bad("tls.acme.email", "%q is not an email address", t.ACME.Email)
	}
	if (t.ACME.EAB.KeyID == "") != (t.ACME.EAB.MACKey == "") {
		bad("tls.acme.eab", "key_id and mac_key must be set together")
	}
	if t.ACME.DisableHTTPChallenge && t.ACME.DisableTLSALPNChallenge {
		bad("tls.acme.disable_tlsalpn_challenge", "both challenge types are disabled: no certificate could be obtained")
	}
	for i, h := range t.Hosts {
		if h == "" || strings.ContainsAny(h, " /:") || net.ParseIP(h) != nil {
			bad("tls.hosts", "[%d] %q is not a DNS name", i, h)
		}
	}
	for i, c := range t.Certificates {
		if c.Cert == "" || c.Key == "" {
			bad("tls.certificates", "[%d]: cert and key must both be set", i)
		}
	}
	if t.OnDemand.Ask != "" {
		if u, err := url.Parse(t.OnDemand.Ask); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("tls.on_demand.ask", "%q is not an http(s) URL", t.OnDemand.Ask)
		}
	}
	if t.OnDemand.Rate.Burst < 1 {
		bad("tls.on_demand.rate.burst", "%d must be at least 1", t.OnDemand.Rate.Burst)
	}
	if t.OnDemand.Rate.Interval <= 0 {
		bad("tls.on_demand.rate.interval", "%s must be positive", t.OnDemand.Rate.Interval)
	}
	switch t.ClientAuth.Verify {
	case VerifyOn, VerifyOptional, VerifyOptionalNoCA, VerifyOff:
	default:
		bad("tls.client_auth.verify", "%q is not one of on, optional, optional_no_ca, off", t.ClientAuth.Verify)
	}
	if (t.ClientAuth.Verify == VerifyOn || t.ClientAuth.Verify == VerifyOptional) && t.ClientAuth.CA == "" {
		bad("tls.client_auth.ca", "must be set when tls.client_auth.verify is %s", t.ClientAuth.Verify)
	}
	if t.ClientAuth.CRL != "" && t.ClientAuth.CA == "" {
		bad("tls.client_auth.crl", "set without tls.client_auth.ca")
	}
	if t.ClientAuth.Depth < 1 || t.ClientAuth.Depth > 16 {
		bad("tls.client_auth.depth", "%d is outside 1..16", t.ClientAuth.Depth)
	}
	if t.Redirect.Port < 0 || t.Redirect.Port > 65535 {
		bad("tls.redirect.port", "%d is not a port", t.Redirect.Port)
	}
	if t.HSTS.MaxAge < 0 {
		bad("tls.hsts.max_age", "%s is negative", t.HSTS.MaxAge)
	}
}
