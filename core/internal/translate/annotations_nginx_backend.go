package translate

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"time"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/sluicegw/sluice/core/internal/bytesize"
	"github.com/sluicegw/sluice/core/internal/model"
)

// The sluice.io annotations of a route's traffic policy (model.Traffic),
// rate limits and client certificate forwarding. Each has ingress-nginx
// twins (below); the sluice.io one wins when both are set.
const (
	AnnotationBackendProtocol   = "sluice.io/backend-protocol"
	AnnotationMaxBodySize       = "sluice.io/max-body-size"
	AnnotationConnectTimeout    = "sluice.io/connect-timeout"
	AnnotationReadTimeout       = "sluice.io/read-timeout"
	AnnotationSendTimeout       = "sluice.io/send-timeout"
	AnnotationAllowSourceRange  = "sluice.io/allow-source-range"
	AnnotationDenySourceRange   = "sluice.io/deny-source-range"
	AnnotationLimitConnections  = "sluice.io/limit-connections"
	AnnotationRateLimit         = "sluice.io/rate-limit"
	AnnotationForwardClientCert = "sluice.io/forward-client-cert"
)

const (
	nginxLimitRPS        = NginxPrefix + "limit-rps"
	nginxLimitRPM        = NginxPrefix + "limit-rpm"
	nginxBurstMultiplier = NginxPrefix + "limit-burst-multiplier"
	nginxLimitWhitelist  = NginxPrefix + "limit-whitelist"
	nginxLimitAllowlist  = NginxPrefix + "limit-allowlist"
	nginxPassCert        = NginxPrefix + "auth-tls-pass-certificate-to-upstream"
)

// backendAnnotations are the annotations of this file that translate
// honours (class.go unions them with the other features' sets).
var backendAnnotations = func() map[string]bool {
	out := map[string]bool{
		AnnotationRateLimit: true, nginxLimitRPS: true, nginxLimitRPM: true,
		nginxBurstMultiplier: true, nginxLimitWhitelist: true, nginxLimitAllowlist: true,
		AnnotationForwardClientCert: true, nginxPassCert: true,
	}
	for _, t := range []twins{protocolTwins, bodySizeTwins, connectTwins, readTwins, sendTwins, allowTwins, denyTwins, connsTwins,
		tlsVerifyTwins, tlsSecretTwins, tlsNameTwins} {
		out[t.key] = true
		for _, k := range t.nginx {
			out[k] = true
		}
	}
	return out
}()

// twins is a sluice.io annotation and its ingress-nginx twins, in
// precedence order.
type twins struct {
	key   string
	nginx []string
}

var (
	protocolTwins = twins{AnnotationBackendProtocol, []string{NginxPrefix + "backend-protocol"}}
	bodySizeTwins = twins{AnnotationMaxBodySize, []string{NginxPrefix + "proxy-body-size"}}
	connectTwins  = twins{AnnotationConnectTimeout, []string{NginxPrefix + "proxy-connect-timeout"}}
	readTwins     = twins{AnnotationReadTimeout, []string{NginxPrefix + "proxy-read-timeout"}}
	sendTwins     = twins{AnnotationSendTimeout, []string{NginxPrefix + "proxy-send-timeout"}}
	// allowlist- is ingress-nginx's current name, whitelist- the old one.
	allowTwins = twins{AnnotationAllowSourceRange, []string{NginxPrefix + "allowlist-source-range", NginxPrefix + "whitelist-source-range"}}
	denyTwins  = twins{AnnotationDenySourceRange, []string{NginxPrefix + "denylist-source-range"}}
	connsTwins = twins{AnnotationLimitConnections, []string{NginxPrefix + "limit-connections"}}
)

// readTwin reads the setting t of ing: the sluice.io annotation if set, else
// the first ingress-nginx twin set. parse reads the sluice.io syntax,
// parseNginx the ingress-nginx one. The twins that lose are warned about
// when invalid or when they disagree with the winner. It returns the field
// that was used (for the caller's messages) and the winner's parse error.
func readTwin[T any](b *builder, ing *networkingv1.Ingress, src model.ObjectRef, t twins,
	parse, parseNginx func(string) (T, error)) (v T, field string, set bool, err error) {
	type cand struct {
		key   string
		parse func(string) (T, error)
	}
	var cands []cand
	if _, ok := ing.Annotations[t.key]; ok {
		cands = append(cands, cand{t.key, parse})
	}
	for _, k := range t.nginx {
		if _, ok := ing.Annotations[k]; ok {
			cands = append(cands, cand{k, parseNginx})
		}
	}
	if len(cands) == 0 {
		return v, "", false, nil
	}
	win := cands[0]
	v, err = win.parse(strings.TrimSpace(ing.Annotations[win.key]))
	for _, c := range cands[1:] {
		raw := ing.Annotations[c.key]
		cv, cerr := c.parse(strings.TrimSpace(raw))
		switch {
		case cerr != nil:
			b.warn(src, fmt.Sprintf("%s: %v; ignored", annKeyField(c.key), cerr))
		case err == nil && !reflect.DeepEqual(cv, v):
			b.warn(src, fmt.Sprintf("%s: %q conflicts with %s %q, which wins", annKeyField(c.key), raw, annKeyField(win.key), ing.Annotations[win.key]))
		}
	}
	return v, annKeyField(win.key), true, err
}

func annKeyField(k string) string { return fmt.Sprintf("metadata.annotations[%q]", k) }

// addTraffic reads the traffic annotations of ing into b.traffic and puts
// the rate limit and client certificate filters in front of b.filters.
// Invalid values of settings that only relax things are warned about and
// ignored; invalid access controls (source ranges, rate limits) make the
// Ingress's routes answer 503, as ingress-nginx denies such a location.
func (b *builder) addTraffic(ing *networkingv1.Ingress, src model.ObjectRef) {
	b.traffic = nil
	tr := model.Traffic{MaxBodyBytes: b.opts.MaxBodyBytes}
	ignore := func(field string, err error) {
		b.warn(src, fmt.Sprintf("%s: %v; ignored", field, err))
	}
	deny := func(field string, err error) {
		msg := fmt.Sprintf("%s: %v", field, err)
		b.warn(src, msg+"; its routes answer 503 until it is fixed")
		if b.filterErr == "" {
			b.filterErr = msg
		}
	}
	if p, f, ok, err := readTwin(b, ing, src, protocolTwins, parseProtocol, parseNginxProtocol); ok && err != nil {
		ignore(f, err)
	} else if ok {
		tr.Protocol = p
	}
	if n, f, ok, err := readTwin(b, ing, src, bodySizeTwins, ParseSize, ParseSize); ok && err != nil {
		ignore(f, err)
	} else if ok {
		tr.MaxBodyBytes = n
	}
	for _, to := range []struct {
		t   twins
		dst *time.Duration
	}{{connectTwins, &tr.ConnectTimeout}, {readTwins, &tr.ReadTimeout}, {sendTwins, &tr.SendTimeout}} {
		if d, f, ok, err := readTwin(b, ing, src, to.t, parseTimeout, parseNginxTimeout); ok && err != nil {
			ignore(f, err)
		} else if ok {
			*to.dst = d
		}
	}
	if n, f, ok, err := readTwin(b, ing, src, connsTwins, parseCount, parseCount); ok && err != nil {
		ignore(f, err)
	} else if ok {
		tr.MaxConnsPerClient = n
	}
	if p, f, ok, err := readTwin(b, ing, src, allowTwins, ParseSourceRange, ParseSourceRange); ok && err != nil {
		deny(f, err)
	} else if ok {
		tr.AllowSources = p
	}
	if p, f, ok, err := readTwin(b, ing, src, denyTwins, ParseSourceRange, ParseSourceRange); ok && err != nil {
		deny(f, err)
	} else if ok {
		tr.DenySources = p
	}
	tr.UpstreamTLS = b.upstreamTLS(ing, src, tr.Protocol, deny) // annotations_backend_tls.go
	if !reflect.DeepEqual(tr, model.Traffic{}) {
		b.traffic = &tr
	}

	var pre []model.FilterRef
	if limits, f, err := b.rateLimits(ing, src); err != nil {
		deny(f, err)
	} else if len(limits) > 0 {
		pre = append(pre, model.FilterRef{Name: "ratelimit", Config: rateLimitConfig(limits, src, b.opts.TrustedProxies)})
	}
	if fwd := b.forwardClientCert(ing, src); fwd != "" {
		cfg, _ := json.Marshal(map[string]string{"forward": fwd})
		pre = append(pre, model.FilterRef{Name: "mtls-identity", Config: cfg})
	}
	if len(pre) > 0 {
		b.filters = append(pre, b.filters...)
	}
}

func parseProtocol(v string) (model.Protocol, error) {
	switch p := model.Protocol(v); p {
	case model.ProtocolHTTP, model.ProtocolHTTPS, model.ProtocolGRPC, model.ProtocolGRPCS, model.ProtocolH2C:
		return p, nil
	}
	return "", fmt.Errorf("%q is not one of http, https, grpc, grpcs, h2c", v)
}

// parseNginxProtocol reads ingress-nginx's backend-protocol. AUTO_HTTP
// and FCGI exist there but not here.
func parseNginxProtocol(v string) (model.Protocol, error) {
	switch u := strings.ToUpper(v); u {
	case "HTTP", "HTTPS", "GRPC", "GRPCS", "H2C":
		return model.Protocol(strings.ToLower(u)), nil
	case "AUTO_HTTP", "FCGI":
		return "", fmt.Errorf("%q is not supported by sluice (only HTTP, HTTPS, GRPC, GRPCS and H2C are)", v)
	}
	return "", fmt.Errorf("%q is not one of HTTP, HTTPS, GRPC, GRPCS, H2C", v)
}

// ParseSize reads a size in nginx syntax: a number of bytes with an
// optional unit k, m or g (either case, powers of 1024). "0" means no
// limit.
func ParseSize(v string) (int64, error) { return bytesize.Parse(v) }

func parseTimeout(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a positive duration (5s, 1m30s)", v)
	}
	return d, nil
}

// parseNginxTimeout reads ingress-nginx's timeouts: whole seconds ("60"),
// or a duration with a unit ("60s", "2m").
func parseNginxTimeout(v string) (time.Duration, error) {
	if v != "" && strings.TrimLeft(v, "0123456789") == "" {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("%q is not a positive number of seconds", v)
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a positive number of seconds", v)
	}
	return d, nil
}

func parseCount(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1<<30 {
		return 0, fmt.Errorf("%q is not a positive whole number", v)
	}
	return n, nil
}

// ParseSourceRange reads a comma-separated list of CIDR prefixes; a bare
// IP address means that one address (/32 or /128). Prefixes are masked
// ("10.1.2.3/8" is 10.0.0.0/8) and IPv4-mapped IPv6 addresses unmapped.
func ParseSourceRange(v string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			if v == "" || strings.TrimSpace(v) == "" {
				return nil, errors.New(`"" lists no address ranges`)
			}
			return nil, fmt.Errorf("%q: entry %d is empty", v, i)
		}
		var p netip.Prefix
		if strings.Contains(s, "/") {
			var err error
			if p, err = netip.ParsePrefix(s); err != nil || p.Addr().Zone() != "" {
				return nil, fmt.Errorf("%q: entry %d %q is not a CIDR prefix", v, i, s)
			}
			if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
				p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
			}
		} else {
			a, err := netip.ParseAddr(s)
			if err != nil || a.Zone() != "" {
				return nil, fmt.Errorf("%q: entry %d %q is not an IP address or CIDR prefix", v, i, s)
			}
			a = a.Unmap()
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// RateLimit is one limit of the sluice.io/rate-limit annotation: Rate
// requests per Period, Burst at once, one bucket per Key (a ratelimit
// filter key: client_ip, tls_identity, host, route or header:NAME, joined
// by "+").
type RateLimit struct {
	Rate   int
	Period time.Duration
	Burst  int
	Key    string
}

// ParseRateLimit reads the sluice.io/rate-limit annotation: limits
// separated by ",", each "RATE/UNIT [burst=N] [key=KEY]" with UNIT s, m or
// h. Burst defaults to RATE, key to client_ip. Example:
// "10/s burst=50, 1000/h key=header:X-Api-Key".
func ParseRateLimit(v string) ([]RateLimit, error) {
	var out []RateLimit
	for i, item := range strings.Split(v, ",") {
		l, err := parseOneLimit(strings.TrimSpace(item))
		if err != nil {
			return nil, fmt.Errorf("%q: limit %d: %w", v, i, err)
		}
		out = append(out, l)
	}
	return out, nil
}

func parseOneLimit(s string) (RateLimit, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return RateLimit{}, errors.New("empty (want RATE/UNIT [burst=N] [key=KEY])")
	}
	rate, unit, ok := strings.Cut(fields[0], "/")
	if !ok {
		return RateLimit{}, fmt.Errorf("%q is not RATE/UNIT (10/s)", fields[0])
	}
	l := RateLimit{Key: "client_ip"}
	var err error
	if l.Rate, err = strconv.Atoi(rate); err != nil || l.Rate < 1 || l.Rate > 1e9 {
		return RateLimit{}, fmt.Errorf("rate %q is not a whole number in 1..1000000000", rate)
	}
	switch unit {
	case "s":
		l.Period = time.Second
	case "m":
		l.Period = time.Minute
	case "h":
		l.Period = time.Hour
	default:
		return RateLimit{}, fmt.Errorf("unit %q is not s, m or h", unit)
	}
	l.Burst = l.Rate
	seen := map[string]bool{}
	for _, f := range fields[1:] {
		k, val, ok := strings.Cut(f, "=")
		if !ok || (k != "burst" && k != "key") {
			return RateLimit{}, fmt.Errorf("%q is not burst=N or key=KEY", f)
		}
		if seen[k] {
			return RateLimit{}, fmt.Errorf("%s is given twice", k)
		}
		seen[k] = true
		if k == "burst" {
			if l.Burst, err = strconv.Atoi(val); err != nil || l.Burst < 1 || l.Burst > 1e9 {
				return RateLimit{}, fmt.Errorf("burst %q is not a whole number in 1..1000000000", val)
			}
			continue
		}
		if err := checkLimitKey(val); err != nil {
			return RateLimit{}, err
		}
		l.Key = val
	}
	return l, nil
}

// checkLimitKey accepts what the ratelimit filter's key accepts.
func checkLimitKey(key string) error {
	for _, part := range strings.Split(key, "+") {
		switch {
		case part == "client_ip", part == "tls_identity", part == "host", part == "route":
		case strings.HasPrefix(part, "header:") && isHeaderName(part[len("header:"):]):
		default:
			return fmt.Errorf("key part %q is not client_ip, tls_identity, host, route or header:NAME", part)
		}
	}
	return nil
}

func isHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// rateLimits returns the Ingress's rate limits: sluice.io/rate-limit, else
// those that ingress-nginx's limit-rps and limit-rpm describe (burst =
// rate × limit-burst-multiplier, default 5, one bucket per client
// address). The error is the winner's, with its field.
func (b *builder) rateLimits(ing *networkingv1.Ingress, src model.ObjectRef) ([]RateLimit, string, error) {
	a := ing.Annotations
	for _, k := range []string{nginxLimitAllowlist, nginxLimitWhitelist} {
		if _, ok := a[k]; ok {
			b.warn(src, fmt.Sprintf("%s: not honoured: the ratelimit filter has no exempt list, so these clients are limited too", annKeyField(k)))
		}
	}
	mult, multSet := 5, false
	if v, ok := a[nginxBurstMultiplier]; ok {
		n, err := parseCount(strings.TrimSpace(v))
		if err != nil {
			b.warn(src, fmt.Sprintf("%s: %v; the default 5 is used", annKeyField(nginxBurstMultiplier), err))
		} else {
			mult, multSet = n, true
		}
	}
	var nginx []RateLimit
	var nginxKeys []string
	for _, k := range []struct {
		key    string
		period time.Duration
	}{{nginxLimitRPS, time.Second}, {nginxLimitRPM, time.Minute}} {
		v, ok := a[k.key]
		if !ok {
			continue
		}
		n, err := parseCount(strings.TrimSpace(v))
		if err != nil {
			b.warn(src, fmt.Sprintf("%s: %v; ignored", annKeyField(k.key), err))
			continue
		}
		nginx = append(nginx, RateLimit{Rate: n, Period: k.period, Burst: n * mult, Key: "client_ip"})
		nginxKeys = append(nginxKeys, k.key)
	}
	if multSet && len(nginxKeys) == 0 && a[nginxLimitRPS] == "" && a[nginxLimitRPM] == "" {
		b.warn(src, fmt.Sprintf("%s: has no effect without limit-rps or limit-rpm; ignored", annKeyField(nginxBurstMultiplier)))
	}
	raw, own := a[AnnotationRateLimit]
	if !own {
		return nginx, "", nil
	}
	limits, err := ParseRateLimit(strings.TrimSpace(raw))
	if err != nil {
		return nil, annKeyField(AnnotationRateLimit), err
	}
	if len(nginx) > 0 && !reflect.DeepEqual(nginx, limits) {
		for _, k := range nginxKeys {
			b.warn(src, fmt.Sprintf("%s: %q conflicts with %s %q, which wins", annKeyField(k), a[k], annKeyField(AnnotationRateLimit), raw))
		}
	}
	return limits, "", nil
}

// rateLimitConfig is the ratelimit filter config for the limits of the
// Ingress src. The filter's buckets are shared by every instance of the
// filter under a limit's name, so each limit is named after the Ingress
// ("i" and 10 hex digits of a digest of namespace/name, then "-" and its
// index): every Ingress has its own buckets, as in ingress-nginx, and the
// name that clients see in RateLimit-Policy does not reveal the Ingress.
// trusted are the proxies whose X-Forwarded-For the client_ip key believes.
func rateLimitConfig(limits []RateLimit, src model.ObjectRef, trusted []netip.Prefix) json.RawMessage {
	type limit struct {
		Name   string `json:"name"`
		Rate   int    `json:"rate"`
		Period string `json:"period"`
		Burst  int    `json:"burst"`
		Key    string `json:"key"`
	}
	sum := sha256.Sum256([]byte(src.Namespace + "/" + src.Name))
	scope := "i" + hex.EncodeToString(sum[:5])
	ls := make([]limit, len(limits))
	for i, l := range limits {
		ls[i] = limit{Name: scope + "-" + strconv.Itoa(i), Rate: l.Rate, Period: l.Period.String(), Burst: l.Burst, Key: l.Key}
	}
	cfg := struct {
		Limits         []limit  `json:"limits"`
		TrustedProxies []string `json:"trusted_proxies,omitempty"`
	}{Limits: ls}
	for _, p := range trusted {
		cfg.TrustedProxies = append(cfg.TrustedProxies, p.String())
	}
	out, _ := json.Marshal(cfg) // plain structs: cannot fail
	return out
}

// forwardClientCert returns the mtls-identity forward mode that
// sluice.io/forward-client-cert (ssl-client, xfcc or off) or ingress-nginx's
// auth-tls-pass-certificate-to-upstream ("true" is ssl-client) asks for,
// or "" for none.
func (b *builder) forwardClientCert(ing *networkingv1.Ingress, src model.ObjectRef) string {
	parse := func(v string) (string, error) {
		switch v {
		case "ssl-client", "xfcc", "off":
			return v, nil
		}
		return "", fmt.Errorf("%q is not ssl-client, xfcc or off", v)
	}
	parseNginx := func(v string) (string, error) {
		bv, err := strconv.ParseBool(v)
		switch {
		case err != nil:
			return "", fmt.Errorf("%q is not true or false", v)
		case bv:
			return "ssl-client", nil
		}
		return "off", nil
	}
	t := twins{AnnotationForwardClientCert, []string{nginxPassCert}}
	v, f, ok, err := readTwin(b, ing, src, t, parse, parseNginx)
	if !ok || v == "off" {
		return ""
	}
	if err != nil {
		b.warn(src, fmt.Sprintf("%s: %v; ignored", f, err))
		return ""
	}
	return v
}
