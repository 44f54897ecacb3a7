package policy

import (
	"regexp"
	"strconv"
	"strings"
)

// MTLSIdentity is the config of the mtls-identity filter.
type MTLSIdentity struct {
	// Allow: with rules, a certificate must match one of them; without,
	// every verified certificate is allowed.
	Allow []IdentityRule
	// Deny: a certificate matching any of them is refused, before Allow.
	Deny []IdentityRule
	// NoCertStatus answers requests without a verified client certificate
	// (default 401); DeniedStatus those whose certificate is not allowed
	// (default 403).
	NoCertStatus, DeniedStatus int
	// Forward is how the identity is passed upstream: "" (not at all),
	// "xfcc" (X-Forwarded-Client-Cert, Envoy's format) or "ssl-client"
	// (ingress-nginx's ssl-client-* headers). Client copies of these
	// headers are always removed.
	Forward string
}

// IdentityRule matches a certificate when every field it sets matches.
type IdentityRule struct {
	SPIFFEID     string         // exact
	SPIFFEPrefix string         // prefix of the SPIFFE ID
	TrustDomain  string         // spiffe://DOMAIN/…
	DNS          string         // a DNS SAN: exact, or "*.example.com" for one label
	CN, O        *regexp.Regexp // the subject's CN, any of its O, whole-string match
	Subject      *regexp.Regexp // the RFC 2253 subject, whole-string match
	Issuer       *regexp.Regexp // the RFC 2253 issuer, whole-string match
}

// Identity is a verified client certificate, as the sluice extension
// gives it (sdk.Peer).
type Identity struct {
	Subject, Issuer string // RFC 2253
	DNSNames, URIs  []string
	SPIFFEID        string
	SHA256          string // hex of the DER
}

type rawIdentityRule struct {
	SPIFFEID     string `json:"spiffe_id"`
	SPIFFEPrefix string `json:"spiffe_prefix"`
	TrustDomain  string `json:"trust_domain"`
	DNS          string `json:"dns"`
	CN           string `json:"cn"`
	O            string `json:"o"`
	Subject      string `json:"subject"`
	Issuer       string `json:"issuer"`
}

// ParseMTLSIdentity parses and validates an mtls-identity config (JSON);
// see filters/mtls-identity/README.md. Errors name the field.
func ParseMTLSIdentity(b []byte) (*MTLSIdentity, error) {
	var raw struct {
		Allow        []rawIdentityRule `json:"allow"`
		Deny         []rawIdentityRule `json:"deny"`
		NoCertStatus int               `json:"no_cert_status"`
		DeniedStatus int               `json:"denied_status"`
		Forward      string            `json:"forward"`
	}
	if err := decode(b, &raw); err != nil {
		return nil, err
	}
	m := &MTLSIdentity{NoCertStatus: raw.NoCertStatus, DeniedStatus: raw.DeniedStatus, Forward: raw.Forward}
	var err error
	if m.Allow, err = identityRules("allow", raw.Allow); err != nil {
		return nil, err
	}
	if m.Deny, err = identityRules("deny", raw.Deny); err != nil {
		return nil, err
	}
	if m.NoCertStatus == 0 {
		m.NoCertStatus = 401
	}
	if m.DeniedStatus == 0 {
		m.DeniedStatus = 403
	}
	if m.NoCertStatus < 400 || m.NoCertStatus > 499 {
		return nil, fieldError("no_cert_status", strconv.Itoa(m.NoCertStatus)+": want a 4xx status")
	}
	if m.DeniedStatus < 400 || m.DeniedStatus > 499 {
		return nil, fieldError("denied_status", strconv.Itoa(m.DeniedStatus)+": want a 4xx status")
	}
	switch m.Forward {
	case "", "xfcc", "ssl-client":
	default:
		return nil, fieldError("forward", strconv.Quote(m.Forward)+": want xfcc, ssl-client or nothing")
	}
	return m, nil
}

func identityRules(field string, raws []rawIdentityRule) ([]IdentityRule, error) {
	var out []IdentityRule
	for i, r := range raws {
		f := field + "[" + strconv.Itoa(i) + "]."
		if r == (rawIdentityRule{}) {
			return nil, fieldError(field+"["+strconv.Itoa(i)+"]", "a rule needs at least one of spiffe_id, spiffe_prefix, trust_domain, dns, cn, o, subject, issuer")
		}
		rule := IdentityRule{SPIFFEID: r.SPIFFEID, SPIFFEPrefix: r.SPIFFEPrefix, TrustDomain: r.TrustDomain, DNS: strings.ToLower(r.DNS)}
		if r.SPIFFEID != "" && !strings.HasPrefix(r.SPIFFEID, "spiffe://") {
			return nil, fieldError(f+"spiffe_id", strconv.Quote(r.SPIFFEID)+": want spiffe://…")
		}
		if r.SPIFFEPrefix != "" && !strings.HasPrefix(r.SPIFFEPrefix, "spiffe://") {
			return nil, fieldError(f+"spiffe_prefix", strconv.Quote(r.SPIFFEPrefix)+": want spiffe://…")
		}
		if r.TrustDomain != "" && (strings.ContainsAny(r.TrustDomain, "/:") || strings.Contains(r.TrustDomain, "..")) {
			return nil, fieldError(f+"trust_domain", strconv.Quote(r.TrustDomain)+": want a trust domain name, e.g. shop.test")
		}
		if d := rule.DNS; d != "" && (strings.Contains(d[min(1, len(d)):], "*") || d[0] == '*' && !strings.HasPrefix(d, "*.")) {
			return nil, fieldError(f+"dns", strconv.Quote(r.DNS)+": a wildcard is only allowed as the whole first label (*.example.com)")
		}
		for _, re := range []struct {
			name string
			src  string
			dst  **regexp.Regexp
		}{{"cn", r.CN, &rule.CN}, {"o", r.O, &rule.O}, {"subject", r.Subject, &rule.Subject}, {"issuer", r.Issuer, &rule.Issuer}} {
			if re.src == "" {
				continue
			}
			c, err := regexp.Compile("^(?:" + re.src + ")$")
			if err != nil {
				return nil, fieldError(f+re.name, err.Error())
			}
			*re.dst = c
		}
		out = append(out, rule)
	}
	return out, nil
}

// Allowed reports whether id passes the config's deny and allow rules.
func (m *MTLSIdentity) Allowed(id Identity) bool {
	for i := range m.Deny {
		if m.Deny[i].Match(id) {
			return false
		}
	}
	if len(m.Allow) == 0 {
		return true
	}
	for i := range m.Allow {
		if m.Allow[i].Match(id) {
			return true
		}
	}
	return false
}

// Match reports whether id matches every field r sets.
func (r *IdentityRule) Match(id Identity) bool {
	if r.SPIFFEID != "" && id.SPIFFEID != r.SPIFFEID {
		return false
	}
	if r.SPIFFEPrefix != "" && !strings.HasPrefix(id.SPIFFEID, r.SPIFFEPrefix) {
		return false
	}
	if r.TrustDomain != "" {
		rest, ok := strings.CutPrefix(id.SPIFFEID, "spiffe://")
		if domain, _, _ := strings.Cut(rest, "/"); !ok || !strings.EqualFold(domain, r.TrustDomain) {
			return false
		}
	}
	if r.DNS != "" && !matchDNS(r.DNS, id.DNSNames) {
		return false
	}
	if r.Subject != nil && !r.Subject.MatchString(id.Subject) {
		return false
	}
	if r.Issuer != nil && !r.Issuer.MatchString(id.Issuer) {
		return false
	}
	if r.CN != nil || r.O != nil {
		attrs := ParseDN(id.Subject)
		if r.CN != nil && !anyMatch(r.CN, attrs["CN"]) {
			return false
		}
		if r.O != nil && !anyMatch(r.O, attrs["O"]) {
			return false
		}
	}
	return true
}

func anyMatch(re *regexp.Regexp, vs []string) bool {
	for _, v := range vs {
		if re.MatchString(v) {
			return true
		}
	}
	return false
}

// matchDNS: pattern is exact or "*.rest", which matches one extra label.
func matchDNS(pattern string, names []string) bool {
	for _, n := range names {
		n = strings.ToLower(n)
		if n == pattern {
			return true
		}
		if rest, ok := strings.CutPrefix(pattern, "*."); ok {
			if label, tail, found := strings.Cut(n, "."); found && label != "" && tail == rest {
				return true
			}
		}
	}
	return false
}

// ParseDN splits an RFC 2253 distinguished name ("CN=web,O=Shop") into
// its attributes' values by type, unescaping "\,"-style escapes.
func ParseDN(dn string) map[string][]string {
	out := map[string][]string{}
	var cur strings.Builder
	flush := func() {
		k, v, ok := strings.Cut(cur.String(), "=")
		if ok {
			out[strings.ToUpper(strings.TrimSpace(k))] = append(out[strings.ToUpper(strings.TrimSpace(k))], v)
		}
		cur.Reset()
	}
	for i := 0; i < len(dn); i++ {
		switch c := dn[i]; {
		case c == '\\' && i+1 < len(dn):
			i++
			cur.WriteByte(dn[i])
		case c == ',' || c == '+':
			flush()
		default:
			cur.WriteByte(c)
		}
	}
	flush()
	return out
}

// XFCC is the X-Forwarded-Client-Cert value for id, in Envoy's format:
// Hash=…;Subject="…";URI=…;DNS=….
func XFCC(id Identity) string {
	var b strings.Builder
	n := len("Hash=;Subject=\"\"") + len(id.SHA256) + len(id.Subject) + 2 // a few escapes fit
	for _, u := range id.URIs {
		n += len(";URI=") + len(u) + 2
	}
	for _, d := range id.DNSNames {
		n += len(";DNS=") + len(d) + 2
	}
	b.Grow(n) // one allocation
	b.WriteString("Hash=")
	b.WriteString(id.SHA256)
	b.WriteString(`;Subject="`)
	b.WriteString(xfccEscaper.Replace(id.Subject))
	b.WriteByte('"')
	for _, u := range id.URIs {
		b.WriteString(";URI=")
		b.WriteString(xfccValue(u))
	}
	for _, d := range id.DNSNames {
		b.WriteString(";DNS=")
		b.WriteString(xfccValue(d))
	}
	return b.String()
}

var xfccEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

// xfccValue quotes a value that contains a separator.
func xfccValue(v string) string {
	if strings.ContainsAny(v, `,;="\`) {
		return `"` + xfccEscaper.Replace(v) + `"`
	}
	return v
}
