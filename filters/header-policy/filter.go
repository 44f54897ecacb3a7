// Package headerpolicy is Sluice's built-in header filter: it sets, adds
// and removes request and response headers (with ${…} variables), refuses
// requests that miss required headers or carry denied ones, caps the
// request's header count and size, adds a request id when absent and HSTS
// to responses. See README.md; the config is parsed by package policy,
// which the gateway also uses to refuse a bad config at load.
package headerpolicy

import (
	"crypto/rand"
	"encoding/hex"
	"net/netip"

	"github.com/sluicegw/sluice/filters/policy"
	"github.com/sluicegw/sluice/sdk"
)

// New returns the filter's handler for one instance. The built-ins' module
// (filters/builtins) registers the one its environment names.
func New() sdk.Handler { return &filter{} }

type filter struct {
	cfg    *policy.HeaderPolicy // parsed on the first request
	cfgErr error
	vars   func(string) string // the current request's variables
	req    sdk.Request
	id     string
}

func (f *filter) config() (*policy.HeaderPolicy, error) {
	if f.cfg == nil && f.cfgErr == nil {
		f.cfg, f.cfgErr = policy.ParseHeaderPolicy(sdk.Config())
		if f.cfgErr == nil {
			f.vars = f.variable
		}
	}
	return f.cfg, f.cfgErr
}

// variable is the value of ${name} for the current request.
func (f *filter) variable(name string) string {
	switch name {
	case "client_ip":
		return clientIP(f.req, f.cfg.TrustedProxies)
	case "host":
		return f.req.Header().Get("Host")
	case "method":
		return f.req.Method()
	case "path":
		return f.req.URI()
	case "request_id":
		return f.id
	case "route":
		return sdk.Route()
	}
	return ""
}

func (f *filter) HandleRequest(req sdk.Request, resp sdk.Response) bool {
	cfg, err := f.config()
	if err != nil {
		sdk.Log(sdk.LogError, "header-policy: config: "+err.Error())
		return answer(resp, 500, "filter misconfigured\n")
	}
	rules := &cfg.Request
	h := req.Header()
	if rules.MaxHeaders > 0 || rules.MaxHeaderBytes > 0 {
		count, size := 0, 0
		for _, n := range h.Names() {
			for _, v := range h.Values(n) {
				count++
				size += len(n) + len(v)
			}
		}
		if rules.MaxHeaders > 0 && count > rules.MaxHeaders || rules.MaxHeaderBytes > 0 && size > rules.MaxHeaderBytes {
			return answer(resp, 431, "request headers too large\n")
		}
	}
	for _, n := range rules.Deny {
		if len(h.Values(n)) > 0 {
			return answer(resp, rules.RejectStatus, "header "+n+" is not allowed\n")
		}
	}
	for _, r := range rules.Require {
		vs := h.Values(r.Name)
		if len(vs) == 0 {
			return answer(resp, rules.RejectStatus, "header "+r.Name+" is required\n")
		}
		if r.Match != nil && !r.Match.MatchString(vs[0]) {
			return answer(resp, rules.RejectStatus, "header "+r.Name+" is invalid\n")
		}
	}
	f.req, f.id = req, ""
	if rules.RequestID != "" {
		if f.id = h.Get(rules.RequestID); f.id == "" {
			f.id = newID()
			h.Set(rules.RequestID, f.id)
		}
	}
	for _, n := range rules.Remove {
		h.Del(n)
	}
	for _, hv := range rules.Set {
		h.Set(hv.Name, policy.Expand(hv.Value, f.vars))
	}
	for _, hv := range rules.Add {
		h.Add(hv.Name, policy.Expand(hv.Value, f.vars))
	}
	rs := &cfg.Response
	if len(rs.Set)+len(rs.Add)+len(rs.Remove) > 0 || rs.HSTS != "" {
		// Response rules replace what the upstream sent: buffer it.
		sdk.EnableFeatures(sdk.FeatureBufferResponse)
	}
	return true
}

func (f *filter) HandleResponse(req sdk.Request, resp sdk.Response, isError bool) {
	if f.cfg == nil {
		return
	}
	f.req = req
	rs := &f.cfg.Response
	h := resp.Header()
	for _, n := range rs.Remove {
		h.Del(n)
	}
	for _, hv := range rs.Set {
		h.Set(hv.Name, policy.Expand(hv.Value, f.vars))
	}
	for _, hv := range rs.Add {
		h.Add(hv.Name, policy.Expand(hv.Value, f.vars))
	}
	if rs.HSTS != "" && h.Get("Strict-Transport-Security") == "" {
		h.Set("Strict-Transport-Security", rs.HSTS)
	}
}

// newID is a random request id: 16 bytes, hex.
func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "00000000000000000000000000000000"
	}
	var s [32]byte
	hex.Encode(s[:], b[:])
	return string(s[:]) // one allocation, not two
}

func answer(resp sdk.Response, status int, body string) bool {
	resp.SetStatusCode(status)
	resp.Header().Set("Content-Type", "text/plain; charset=utf-8")
	resp.Body().WriteString(body)
	return false
}

// clientIP is policy.ClientIP, reading X-Forwarded-For (one host call)
// only when some proxy is trusted.
func clientIP(req sdk.Request, trusted []netip.Prefix) string {
	var xff []string
	if len(trusted) > 0 {
		xff = req.Header().Values("X-Forwarded-For")
	}
	return policy.ClientIP(req.SourceAddr(), xff, trusted)
}
