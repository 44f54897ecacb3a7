package config

import (
	"net/netip"

	"github.com/sluicegw/sluice/core/internal/bytesize"
)

// Proxy configures how the proxy treats its clients.
type Proxy struct {
	// TrustedProxies are the peers (CIDRs or addresses) whose
	// X-Forwarded-For, -Proto, -Host and Forwarded headers are believed:
	// behind them the client is the right-most X-Forwarded-For address
	// that is not a trusted proxy. It decides source ranges
	// (allow-/deny-source-range), limit-connections and the rate limits
	// that limit-rps and sluice.io/rate-limit set. Empty: the peer is the
	// client and forwarding headers are replaced.
	TrustedProxies []string `koanf:"trusted_proxies"`
	// MaxBodySize is the request body limit (nginx syntax: "8m", "512k";
	// "" or "0" is no limit) of the routes whose Ingress sets none
	// (proxy-body-size, sluice.io/max-body-size): larger bodies get 413.
	MaxBodySize string `koanf:"max_body_size"`
}

// MaxBodyBytes is proxy.max_body_size in bytes; 0 is no limit. Validate
// has refused anything it cannot parse.
func (p Proxy) MaxBodyBytes() int64 {
	if p.MaxBodySize == "" {
		return 0
	}
	n, _ := bytesize.Parse(p.MaxBodySize)
	return n
}

// TrustedPeers parses proxy.trusted_proxies; Validate has refused
// anything it cannot parse.
func (p Proxy) TrustedPeers() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(p.TrustedProxies))
	for _, s := range p.TrustedProxies {
		if pr, err := parsePrefix(s); err == nil {
			out = append(out, pr)
		}
	}
	return out
}

// validateProxy checks the proxy section.
func (c *Config) validateProxy(bad func(key, format string, args ...any)) {
	for i, s := range c.Proxy.TrustedProxies {
		if _, err := parsePrefix(s); err != nil {
			bad("proxy.trusted_proxies", "[%d]: %q is not an address or CIDR", i, s)
		}
	}
	if v := c.Proxy.MaxBodySize; v != "" {
		if _, err := bytesize.Parse(v); err != nil {
			bad("proxy.max_body_size", "%v", err)
		}
	}
}
