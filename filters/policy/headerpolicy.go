package policy

import (
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// HeaderPolicy is the config of the header-policy filter.
type HeaderPolicy struct {
	Request  RequestRules
	Response ResponseRules
	// TrustedProxies: see RateLimit; used by ${client_ip}.
	TrustedProxies []netip.Prefix
}

// RequestRules apply to the request, in this order: limits, deny,
// require, remove, set, add, request id.
type RequestRules struct {
	Set, Add []HeaderValue
	Remove   []string // lowercase names
	// Deny refuses requests that carry any of these headers.
	Deny []string
	// Require refuses requests missing a header, or whose value does not
	// match.
	Require []Requirement
	// RejectStatus answers a denied or incomplete request; default 400.
	RejectStatus int
	// MaxHeaders and MaxHeaderBytes (names + values) cap the request's
	// headers; over them the answer is 431. 0: no cap.
	MaxHeaders, MaxHeaderBytes int
	// RequestID is the header that carries a request id, added (random)
	// when absent; "" for none.
	RequestID string
}

// ResponseRules apply to the response, whoever produced it: remove, set,
// add, then HSTS when absent.
type ResponseRules struct {
	Set, Add []HeaderValue
	Remove   []string
	HSTS     string // Strict-Transport-Security value; "" for none
}

// HeaderValue is a header and its value template, in which ${client_ip},
// ${host}, ${method}, ${path}, ${request_id} and ${route} are replaced.
type HeaderValue struct {
	Name  string
	Value string
}

// Requirement is a header that must be present (and match Match, if set).
type Requirement struct {
	Name  string
	Match *regexp.Regexp
}

type rawRequestRules struct {
	Set            map[string]string `json:"set"`
	Add            map[string]string `json:"add"`
	Remove         []string          `json:"remove"`
	Deny           []string          `json:"deny"`
	Require        []rawRequirement  `json:"require"`
	RejectStatus   int               `json:"reject_status"`
	MaxHeaders     int               `json:"max_headers"`
	MaxHeaderBytes int               `json:"max_header_bytes"`
	RequestID      any               `json:"request_id"`
}

type rawRequirement struct {
	Name  string `json:"name"`
	Match string `json:"match"`
}

type rawResponseRules struct {
	Set    map[string]string `json:"set"`
	Add    map[string]string `json:"add"`
	Remove []string          `json:"remove"`
	HSTS   any               `json:"hsts"`
}

// DefaultHSTS is the Strict-Transport-Security value of "hsts": true.
const DefaultHSTS = "max-age=31536000; includeSubDomains"

var variables = []string{"client_ip", "host", "method", "path", "request_id", "route"}

// ParseHeaderPolicy parses and validates a header-policy config (JSON);
// see filters/header-policy/README.md. Errors name the field.
func ParseHeaderPolicy(b []byte) (*HeaderPolicy, error) {
	var raw struct {
		Request        rawRequestRules  `json:"request"`
		Response       rawResponseRules `json:"response"`
		TrustedProxies []string         `json:"trusted_proxies"`
	}
	if err := decode(b, &raw); err != nil {
		return nil, err
	}
	hp := &HeaderPolicy{}
	for i, s := range raw.TrustedProxies {
		p, err := parsePrefix(s)
		if err != nil {
			return nil, fieldError("trusted_proxies["+strconv.Itoa(i)+"]", strconv.Quote(s)+": want an IP address or a CIDR prefix")
		}
		hp.TrustedProxies = append(hp.TrustedProxies, p)
	}
	rq, rs := raw.Request, raw.Response
	var err error
	if hp.Request.Set, err = headerValues("request.set", rq.Set); err != nil {
		return nil, err
	}
	if hp.Request.Add, err = headerValues("request.add", rq.Add); err != nil {
		return nil, err
	}
	if hp.Request.Remove, err = headerNames("request.remove", rq.Remove); err != nil {
		return nil, err
	}
	if hp.Request.Deny, err = headerNames("request.deny", rq.Deny); err != nil {
		return nil, err
	}
	for i, r := range rq.Require {
		field := "request.require[" + strconv.Itoa(i) + "]"
		if !isToken(r.Name) {
			return nil, fieldError(field+".name", strconv.Quote(r.Name)+": not a header name")
		}
		req := Requirement{Name: strings.ToLower(r.Name)}
		if r.Match != "" {
			if req.Match, err = regexp.Compile(r.Match); err != nil {
				return nil, fieldError(field+".match", err.Error())
			}
		}
		hp.Request.Require = append(hp.Request.Require, req)
	}
	hp.Request.RejectStatus = rq.RejectStatus
	if hp.Request.RejectStatus == 0 {
		hp.Request.RejectStatus = 400
	}
	if hp.Request.RejectStatus < 400 || hp.Request.RejectStatus > 499 {
		return nil, fieldError("request.reject_status", strconv.Itoa(rq.RejectStatus)+": want a 4xx status")
	}
	if rq.MaxHeaders < 0 {
		return nil, fieldError("request.max_headers", "must not be negative")
	}
	if rq.MaxHeaderBytes < 0 {
		return nil, fieldError("request.max_header_bytes", "must not be negative")
	}
	hp.Request.MaxHeaders, hp.Request.MaxHeaderBytes = rq.MaxHeaders, rq.MaxHeaderBytes
	switch v := rq.RequestID.(type) {
	case nil:
	case bool:
		if v {
			hp.Request.RequestID = "x-request-id"
		}
	case string:
		if !isToken(v) {
			return nil, fieldError("request.request_id", strconv.Quote(v)+": not a header name")
		}
		hp.Request.RequestID = strings.ToLower(v)
	default:
		return nil, fieldError("request.request_id", "want true, false or a header name")
	}
	if hp.Response.Set, err = headerValues("response.set", rs.Set); err != nil {
		return nil, err
	}
	if hp.Response.Add, err = headerValues("response.add", rs.Add); err != nil {
		return nil, err
	}
	if hp.Response.Remove, err = headerNames("response.remove", rs.Remove); err != nil {
		return nil, err
	}
	switch v := rs.HSTS.(type) {
	case nil:
	case bool:
		if v {
			hp.Response.HSTS = DefaultHSTS
		}
	case string:
		if !strings.HasPrefix(v, "max-age=") || strings.ContainsAny(v, "\r\n") {
			return nil, fieldError("response.hsts", strconv.Quote(v)+": want true or a value starting with max-age=")
		}
		hp.Response.HSTS = v
	default:
		return nil, fieldError("response.hsts", "want true, false or a header value")
	}
	return hp, nil
}

// headerValues validates a name → value template map, sorted by name so
// that the order rules run in does not depend on map iteration.
func headerValues(field string, m map[string]string) ([]HeaderValue, error) {
	var out []HeaderValue
	for name, v := range m {
		if !isToken(name) {
			return nil, fieldError(field, strconv.Quote(name)+": not a header name")
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			return nil, fieldError(field+"."+name, "a value cannot contain CR, LF or NUL")
		}
		if err := checkTemplate(v); err != nil {
			return nil, fieldError(field+"."+name, err.Error())
		}
		out = append(out, HeaderValue{Name: strings.ToLower(name), Value: v})
	}
	slices.SortFunc(out, func(a, b HeaderValue) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func headerNames(field string, names []string) ([]string, error) {
	out := make([]string, 0, len(names))
	for i, n := range names {
		if !isToken(n) {
			return nil, fieldError(field+"["+strconv.Itoa(i)+"]", strconv.Quote(n)+": not a header name")
		}
		out = append(out, strings.ToLower(n))
	}
	return out, nil
}

// checkTemplate refuses unknown or unterminated ${…} variables.
func checkTemplate(v string) error {
	for {
		i := strings.Index(v, "${")
		if i < 0 {
			return nil
		}
		j := strings.IndexByte(v[i:], '}')
		if j < 0 {
			return errorString("unterminated ${")
		}
		name := v[i+2 : i+j]
		known := false
		for _, k := range variables {
			known = known || k == name
		}
		if !known {
			return errorString("unknown variable ${" + name + "} (want one of ${" + strings.Join(variables, "}, ${") + "})")
		}
		v = v[i+j+1:]
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

// Expand replaces the ${…} variables of a validated template with
// vars(name).
func Expand(v string, vars func(name string) string) string {
	if !strings.Contains(v, "${") {
		return v
	}
	if name, ok := strings.CutPrefix(v, "${"); ok && strings.IndexByte(name, '}') == len(name)-1 {
		return vars(name[:len(name)-1]) // one variable alone: no copy
	}
	var b strings.Builder
	for {
		i := strings.Index(v, "${")
		if i < 0 {
			b.WriteString(v)
			return b.String()
		}
		j := strings.IndexByte(v[i:], '}')
		if j < 0 {
			b.WriteString(v)
			return b.String()
		}
		b.WriteString(v[:i])
		b.WriteString(vars(v[i+2 : i+j]))
		v = v[i+j+1:]
	}
}
