// Command peerlimit is an example Sluice filter in standard Go: a rate
// limit per client identity. The identity is the client certificate's
// SPIFFE ID, else its subject, else the client's IP address; each gets a
// token bucket in the gateway (shared by every instance of the filter).
// The upstream receives the identity in X-Client-Identity; a client over
// its limit gets 429 with Retry-After.
//
// Config (the route's filter config, all optional):
//
//	{"rate": 10, "period_ms": 1000, "burst": 20, "require_cert": true}
//
// require_cert answers 401 to clients without a verified certificate.
//
// Build: make build (or GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -o peerlimit.wasm .)
package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/sluicegw/sluice/sdk"
)

func init() { sdk.Handle(&filter{}) }

// main is required by the Go toolchain but never called: the filter is a
// reactor, initialized by init functions.
func main() {}

type config struct {
	Rate        int  `json:"rate"`
	PeriodMS    int  `json:"period_ms"`
	Burst       int  `json:"burst"`
	RequireCert bool `json:"require_cert"`
}

type filter struct {
	cfg    *config // parsed on the first request: the config is per filter
	cfgErr error
}

func (f *filter) config() (*config, error) {
	if f.cfg == nil && f.cfgErr == nil {
		c := &config{Rate: 10, PeriodMS: 1000, Burst: 20}
		if b := sdk.Config(); len(b) > 0 {
			f.cfgErr = json.Unmarshal(b, c)
		}
		f.cfg = c
	}
	return f.cfg, f.cfgErr
}

// identity names the client: its certificate's SPIFFE ID or subject when
// the gateway verified it, else "ip:" and its address.
func identity(req sdk.Request, peer sdk.Peer) string {
	if peer.Status == sdk.PeerVerified {
		if peer.SPIFFEID != "" {
			return peer.SPIFFEID
		}
		return peer.Subject
	}
	return "ip:" + hostOf(req.SourceAddr())
}

// hostOf strips the port from "IP:port" or "[IPv6]:port". (Package net
// would do it too, but adds a megabyte to the guest.)
func hostOf(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i >= 0 && !strings.Contains(addr[i:], "]") {
		addr = addr[:i]
	}
	return strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
}

func (f *filter) HandleRequest(req sdk.Request, resp sdk.Response) bool {
	cfg, err := f.config()
	if err != nil {
		sdk.Log(sdk.LogError, "peerlimit: invalid config: "+err.Error())
		return answer(resp, 500, "filter misconfigured\n")
	}
	peer := sdk.TLSPeer()
	if cfg.RequireCert && peer.Status != sdk.PeerVerified {
		return answer(resp, 401, "client certificate required\n")
	}
	id := identity(req, peer)
	d, err := sdk.RateTake(id, sdk.Limit{Rate: cfg.Rate, Period: time.Duration(cfg.PeriodMS) * time.Millisecond, Burst: cfg.Burst})
	switch {
	case err == sdk.ErrUnavailable:
		// The store is down: let traffic through rather than fail every
		// request, and say so.
		sdk.Log(sdk.LogWarn, "peerlimit: store unavailable, not limiting")
	case err != nil:
		sdk.Log(sdk.LogError, "peerlimit: "+err.Error())
		return answer(resp, 500, "filter misconfigured\n")
	case !d.Allowed:
		_ = sdk.MetricAdd("denied_total", 1)
		resp.Header().Set("Retry-After", strconv.Itoa(int((d.RetryAfter+time.Second-1)/time.Second)))
		return answer(resp, 429, "rate limit exceeded for "+id+"\n")
	default:
		resp.Header().Set("X-RateLimit-Remaining", strconv.Itoa(d.Remaining))
	}
	req.Header().Set("X-Client-Identity", id)
	req.Header().Set("X-Client-Cert", peer.Status.String())
	return true
}

func answer(resp sdk.Response, status int, body string) bool {
	resp.SetStatusCode(status)
	resp.Header().Set("Content-Type", "text/plain; charset=utf-8")
	resp.Body().WriteString(body)
	return false
}
