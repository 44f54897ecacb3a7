package policy

import (
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// RateLimit is the config of the ratelimit filter.
type RateLimit struct {
	// Limits are all checked, in order; a request over any of them is
	// refused.
	Limits []Limit
	// TrustedProxies are the peers whose X-Forwarded-For is believed when
	// the key uses client_ip.
	TrustedProxies []netip.Prefix
	// OnUnavailable is what happens when the store (e.g. Redis) cannot be
	// reached: "allow" (default) lets the request through, "deny" answers
	// 503.
	OnUnavailable string
}

// Limit is one token bucket per key: Rate tokens every Period, up to Burst.
type Limit struct {
	Name   string
	Rate   int
	Period time.Duration
	Burst  int
	Key    []KeyPart
}

// KeyPart is one part of a bucket key.
type KeyPart struct {
	Kind   string // client_ip, tls_identity, header, host, route
	Header string // the header name, for Kind "header"
}

type rawLimit struct {
	Name   string `json:"name"`
	Rate   int    `json:"rate"`
	Period string `json:"period"`
	Burst  int    `json:"burst"`
	Key    string `json:"key"`
}

type rawRateLimit struct {
	rawLimit
	Limits         []rawLimit `json:"limits"`
	TrustedProxies []string   `json:"trusted_proxies"`
	OnUnavailable  string     `json:"on_unavailable"`
}

// ParseRateLimit parses and validates a ratelimit config (JSON). Either
// one limit at the top level ({"rate": 10, "burst": 20, "key":
// "client_ip"}) or a list under "limits"; see filters/ratelimit/README.md.
// Errors name the field.
func ParseRateLimit(b []byte) (*RateLimit, error) {
	var raw rawRateLimit
	if err := decode(b, &raw); err != nil {
		return nil, err
	}
	top := raw.rawLimit != (rawLimit{})
	if top && len(raw.Limits) > 0 {
		return nil, fieldError("limits", "give either one limit at the top level or a list under limits, not both")
	}
	if !top && len(raw.Limits) == 0 {
		return nil, fieldError("rate", "required (or a list under limits)")
	}
	rl := &RateLimit{OnUnavailable: raw.OnUnavailable}
	switch rl.OnUnavailable {
	case "":
		rl.OnUnavailable = "allow"
	case "allow", "deny":
	default:
		return nil, fieldError("on_unavailable", strconv.Quote(raw.OnUnavailable)+": want allow or deny")
	}
	for i, s := range raw.TrustedProxies {
		p, err := parsePrefix(s)
		if err != nil {
			return nil, fieldError("trusted_proxies["+strconv.Itoa(i)+"]", strconv.Quote(s)+": want an IP address or a CIDR prefix")
		}
		rl.TrustedProxies = append(rl.TrustedProxies, p)
	}
	if top {
		l, err := parseLimit("", raw.rawLimit)
		if err != nil {
			return nil, err
		}
		rl.Limits = []Limit{l}
		return rl, nil
	}
	names := map[string]bool{}
	for i, r := range raw.Limits {
		field := "limits[" + strconv.Itoa(i) + "]."
		if r.Name == "" {
			r.Name = "limit" + strconv.Itoa(i)
		}
		l, err := parseLimit(field, r)
		if err != nil {
			return nil, err
		}
		if names[l.Name] {
			return nil, fieldError(field+"name", strconv.Quote(l.Name)+" is used twice")
		}
		names[l.Name] = true
		rl.Limits = append(rl.Limits, l)
	}
	return rl, nil
}

func parseLimit(field string, r rawLimit) (Limit, error) {
	l := Limit{Name: r.Name, Rate: r.Rate, Burst: r.Burst, Period: time.Second}
	if l.Name == "" {
		l.Name = "default"
	}
	if !isToken(l.Name) {
		return l, fieldError(field+"name", strconv.Quote(l.Name)+": want letters, digits, '-', '_' or '.'")
	}
	if l.Rate < 1 {
		return l, fieldError(field+"rate", "must be at least 1")
	}
	if r.Period != "" {
		d, err := time.ParseDuration(r.Period)
		if err != nil || d < time.Millisecond {
			return l, fieldError(field+"period", strconv.Quote(r.Period)+": want a duration of at least 1ms, e.g. 1s or 1m")
		}
		l.Period = d
	}
	if l.Burst == 0 {
		l.Burst = l.Rate
	}
	if l.Burst < 1 {
		return l, fieldError(field+"burst", "must be at least 1")
	}
	key := r.Key
	if key == "" {
		key = "client_ip"
	}
	for _, part := range strings.Split(key, "+") {
		part = strings.TrimSpace(part)
		switch {
		case part == "client_ip", part == "tls_identity", part == "host", part == "route":
			l.Key = append(l.Key, KeyPart{Kind: part})
		case strings.HasPrefix(part, "header:") && isToken(part[len("header:"):]):
			l.Key = append(l.Key, KeyPart{Kind: "header", Header: strings.ToLower(part[len("header:"):])})
		default:
			return l, fieldError(field+"key", strconv.Quote(part)+": want client_ip, tls_identity, host, route or header:NAME, joined by +")
		}
	}
	return l, nil
}

// isToken reports whether s is a non-empty HTTP token made of letters,
// digits, '-', '_' and '.'.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
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
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// ClientIP is the client's address: the peer's (source, "IP:port"), or,
// when the peer is a trusted proxy, the right-most address of
// X-Forwarded-For (xff: the header's values, in order) that is not a
// trusted proxy. Entries that are not IP addresses end the walk there.
func ClientIP(source string, xff []string, trusted []netip.Prefix) string {
	ip := HostOf(source)
	if len(trusted) == 0 || len(xff) == 0 || !isTrusted(ip, trusted) {
		return ip
	}
	var hops []string
	for _, v := range xff {
		for _, h := range strings.Split(v, ",") {
			hops = append(hops, strings.TrimSpace(h))
		}
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(HostOf(hops[i]))
		if err != nil {
			return ip
		}
		ip = a.Unmap().String()
		if !isTrusted(ip, trusted) {
			return ip
		}
	}
	return ip
}

func isTrusted(ip string, trusted []netip.Prefix) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// PolicyHeader is the RateLimit-Policy header value for the limits
// (draft-ietf-httpapi-ratelimit-headers: quota q tokens per window w
// seconds), e.g. `"default";q=10;w=1`.
func (rl *RateLimit) PolicyHeader() string {
	var b strings.Builder
	for i, l := range rl.Limits {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(`"` + l.Name + `"`)
		b.WriteString(";q=")
		b.WriteString(strconv.Itoa(l.Rate))
		b.WriteString(";w=")
		b.WriteString(strconv.FormatInt(ceilSeconds(l.Period), 10))
	}
	return b.String()
}

// StateHeader is the RateLimit header value for limit name: r remaining
// tokens, t seconds until the next one is available (0 when some are
// left), e.g. `"default";r=0;t=3`.
func StateHeader(name string, remaining int, retryAfter time.Duration) string {
	// Names are tokens (ParseRateLimit): quoting needs no escapes.
	return `"` + name + `";r=` + strconv.Itoa(remaining) + ";t=" + strconv.FormatInt(ceilSeconds(retryAfter), 10)
}

// RetryAfter is the Retry-After header value: whole seconds, rounded up,
// at least 1.
func RetryAfter(d time.Duration) string {
	return strconv.FormatInt(max(1, ceilSeconds(d)), 10)
}

func ceilSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}
