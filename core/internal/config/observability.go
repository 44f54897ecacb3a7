package config

import (
	"net"
	"net/netip"
	"slices"
	"strings"
)

// Admin configures the admin listener's API, dashboard and debug
// endpoints (admin_addr says where it listens).
type Admin struct {
	// Token is the bearer token /api, /metrics, the dashboard and
	// /debug/pprof require. Required when admin_addr is not a loopback
	// address; optional on loopback. Prefer SLUICE_ADMIN_TOKEN to a file.
	Token string `koanf:"token"`
	// PProf serves /debug/pprof (behind the token, if one is set).
	PProf bool `koanf:"pprof"`
}

// RequestID configures the X-Request-Id every request carries upstream and
// in the access log.
type RequestID struct {
	// TrustedProxies are the peers (CIDRs or addresses) whose X-Request-Id
	// is kept; from any other peer a new id replaces it.
	TrustedProxies []string `koanf:"trusted_proxies"`
}

// AccessFields are the access log fields, in the order they are written.
var AccessFields = []string{
	"request_id", "client", "method", "host", "path", "proto", "status", "bytes", "duration",
	"upstream_duration", "route_host", "route", "ingress", "backend", "upstream",
	"user_agent", "referer", "traceparent",
}

// DefaultAccessFields is log.access_fields when unset.
var DefaultAccessFields = []string{
	"request_id", "client", "method", "host", "path", "status", "bytes", "duration",
	"route_host", "route", "ingress", "backend", "upstream",
}

// TrustedRequestIDPeers parses request_id.trusted_proxies; Validate has
// refused anything it cannot parse.
func (r RequestID) TrustedRequestIDPeers() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(r.TrustedProxies))
	for _, s := range r.TrustedProxies {
		if p, err := parsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// AdminLoopback reports whether admin_addr binds only loopback addresses.
// "localhost" counts; an empty host (all interfaces) does not.
func (c *Config) AdminLoopback() bool {
	host, _, err := net.SplitHostPort(c.AdminAddr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// validateObservability checks log.access_*, request_id and admin.
func (c *Config) validateObservability(bad func(key, format string, args ...any)) {
	switch c.Log.AccessFormat {
	case "", "text", "json":
	default:
		bad("log.access_format", "%q is not one of text, json (empty: as log.format)", c.Log.AccessFormat)
	}
	seen := map[string]bool{}
	for i, f := range c.Log.AccessFields {
		switch {
		case !slices.Contains(AccessFields, f):
			bad("log.access_fields", "[%d]: %q is not a field (fields: %s)", i, f, strings.Join(AccessFields, ", "))
		case seen[f]:
			bad("log.access_fields", "[%d]: %q is listed twice", i, f)
		}
		seen[f] = true
	}
	for i, s := range c.RequestID.TrustedProxies {
		if _, err := parsePrefix(s); err != nil {
			bad("request_id.trusted_proxies", "[%d]: %q is not an address or CIDR", i, s)
		}
	}
	if c.AdminAddr != "" && !c.AdminLoopback() && c.Admin.Token == "" {
		bad("admin.token", "must be set when admin_addr (%q) is not a loopback address: the admin API and metrics would be open to the network (set SLUICE_ADMIN_TOKEN)", c.AdminAddr)
	}
	if t := c.Admin.Token; t != "" && (len(t) < 16 || strings.ContainsAny(t, " \t\r\n")) {
		bad("admin.token", "must be at least 16 characters without whitespace")
	}
}
