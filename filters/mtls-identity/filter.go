// Package mtlsidentity is Sluice's built-in client identity filter: it
// allows or denies requests by the verified client certificate the gateway
// checked (SPIFFE ID, trust domain, DNS SAN, subject CN/O, issuer), answers
// 401 without one and 403 when it is not allowed, and can forward the
// identity upstream (X-Forwarded-Client-Cert or ssl-client-* headers),
// always after removing any copy the client sent. See README.md; the
// config is parsed by package policy, which the gateway also uses to
// refuse a bad config at load.
package mtlsidentity

import (
	"strings"

	"github.com/sluicegw/sluice/filters/policy"
	"github.com/sluicegw/sluice/sdk"
)

// New returns the filter's handler for one instance. The built-ins' module
// (filters/builtins) registers the one its environment names.
func New() sdk.Handler { return &filter{} }

type filter struct {
	cfg    *policy.MTLSIdentity // parsed on the first request
	cfgErr error
}

func (f *filter) config() (*policy.MTLSIdentity, error) {
	if f.cfg == nil && f.cfgErr == nil {
		f.cfg, f.cfgErr = policy.ParseMTLSIdentity(sdk.Config())
	}
	return f.cfg, f.cfgErr
}

// HandleRequest first removes the identity headers (x-forwarded-client-cert,
// ssl-client-*) that only the gateway may set. The gateway strips client
// copies before any filter runs; the filter removes them again so that it
// never depends on that.
func (f *filter) HandleRequest(req sdk.Request, resp sdk.Response) bool {
	h := req.Header()
	// One host call for the names, one per identity header present
	// (rather than one per header that could be).
	for _, n := range h.Names() {
		if n == "x-forwarded-client-cert" || strings.HasPrefix(n, "ssl-client") {
			h.Del(n)
		}
	}
	cfg, err := f.config()
	if err != nil {
		sdk.Log(sdk.LogError, "mtls-identity: config: "+err.Error())
		return answer(resp, 500, "filter misconfigured\n")
	}
	peer := sdk.TLSPeer()
	if peer.Status != sdk.PeerVerified {
		return answer(resp, cfg.NoCertStatus, "a verified client certificate is required\n")
	}
	id := policy.Identity{Subject: peer.Subject, Issuer: peer.Issuer, DNSNames: peer.DNSNames,
		URIs: peer.URIs, SPIFFEID: peer.SPIFFEID, SHA256: peer.SHA256}
	if !cfg.Allowed(id) {
		_ = sdk.MetricAdd("denied_total", 1)
		return answer(resp, cfg.DeniedStatus, "client certificate not allowed\n")
	}
	switch cfg.Forward {
	case "xfcc":
		h.Set("X-Forwarded-Client-Cert", policy.XFCC(id))
	case "ssl-client":
		h.Set("ssl-client-verify", "SUCCESS")
		h.Set("ssl-client-subject-dn", id.Subject)
		h.Set("ssl-client-issuer-dn", id.Issuer)
		h.Set("ssl-client-fingerprint", id.SHA256)
	}
	return true
}

func answer(resp sdk.Response, status int, body string) bool {
	resp.SetStatusCode(status)
	resp.Header().Set("Content-Type", "text/plain; charset=utf-8")
	resp.Body().WriteString(body)
	return false
}
