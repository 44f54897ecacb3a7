// Package ratelimit is Sluice's built-in rate limit filter: token buckets
// per key (client IP, TLS identity, a header, the host, the route or a
// combination), several limits per route. A request over a limit gets 429
// with Retry-After, RateLimit-Policy and RateLimit and never reaches the
// upstream. Buckets live in the gateway (sluice.rate_take): shared by every
// instance of the filter, and across replicas when the gateway uses Redis.
//
// The config is parsed by package policy, which the gateway also uses to
// refuse a bad config when it loads the route. See README.md.
package ratelimit

import (
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"strings"

	"github.com/sluicegw/sluice/filters/policy"
	"github.com/sluicegw/sluice/sdk"
)

// New returns the filter's handler for one instance. The built-ins' module
// (filters/builtins) registers the one its environment names.
func New() sdk.Handler { return &filter{} }

type filter struct {
	cfg    *policy.RateLimit // parsed on the first request
	policy string            // RateLimit-Policy value
	cfgErr error
	key    []byte // bucketKey's buffer
}

func (f *filter) config() (*policy.RateLimit, error) {
	if f.cfg == nil && f.cfgErr == nil {
		f.cfg, f.cfgErr = policy.ParseRateLimit(sdk.Config())
		if f.cfgErr == nil {
			f.policy = f.cfg.PolicyHeader()
		}
	}
	return f.cfg, f.cfgErr
}

func (f *filter) HandleRequest(req sdk.Request, resp sdk.Response) bool {
	cfg, err := f.config()
	if err != nil {
		// The gateway validates the config before loading the filter, so
		// this is only reached by a gateway that does not.
		sdk.Log(sdk.LogError, "ratelimit: config: "+err.Error())
		return answer(resp, 500, "filter misconfigured\n")
	}
	var (
		denied    bool
		retry     sdk.Decision // the denial with the longest wait
		retryName string
		low       = sdk.Decision{Remaining: -1} // the allowed take with the fewest left
		lowName   string
		peer      lazyPeer
	)
	for _, l := range cfg.Limits {
		d, err := sdk.RateTake(f.bucketKey(req, cfg, l, &peer), sdk.Limit{Rate: l.Rate, Period: l.Period, Burst: l.Burst})
		switch {
		case err == sdk.ErrUnavailable:
			if cfg.OnUnavailable == "deny" {
				return answer(resp, 503, "rate limit store unavailable\n")
			}
			continue // the gateway logs the outage once per interval
		case err != nil:
			sdk.Log(sdk.LogError, "ratelimit: "+err.Error())
			return answer(resp, 500, "filter misconfigured\n")
		case !d.Allowed:
			if !denied || d.RetryAfter > retry.RetryAfter {
				retry, retryName = d, l.Name
			}
			denied = true
		case low.Remaining < 0 || d.Remaining < low.Remaining:
			low, lowName = d, l.Name
		}
	}
	h := resp.Header()
	h.Set("RateLimit-Policy", f.policy)
	if denied {
		_ = sdk.MetricAdd("limited_total", 1)
		h.Set("Retry-After", policy.RetryAfter(retry.RetryAfter))
		h.Set("RateLimit", policy.StateHeader(retryName, 0, retry.RetryAfter))
		return answer(resp, 429, "rate limit exceeded\n")
	}
	if lowName != "" {
		h.Set("RateLimit", policy.StateHeader(lowName, low.Remaining, 0))
	}
	return true
}

// bucketKey is the store key of l's bucket for req: the limit's name, NUL,
// then the key's parts joined by NUL, built in f.key (one allocation per
// limit: a Go allocation costs a guest about half a microsecond). Keys
// longer than the host accepts (1024 bytes, e.g. a huge header value) are
// hashed, so a client cannot turn its own header into an error.
func (f *filter) bucketKey(req sdk.Request, cfg *policy.RateLimit, l policy.Limit, peer *lazyPeer) string {
	b := append(f.key[:0], l.Name...)
	b = append(b, 0)
	for i, p := range l.Key {
		if i > 0 {
			b = append(b, 0)
		}
		switch p.Kind {
		case "client_ip":
			b = append(b, clientIP(req, cfg.TrustedProxies)...)
		case "tls_identity":
			b = appendIdentity(b, req, cfg, peer)
		case "header":
			b = append(b, req.Header().Get(p.Header)...)
		case "host":
			b = append(b, strings.ToLower(req.Header().Get("Host"))...)
		case "route":
			// Buckets are per filter, and a filter per route entry: one
			// bucket for every request of the entry.
		}
	}
	f.key = b
	if len(b) <= 1024 {
		return string(b)
	}
	sum := sha256.Sum256(b)
	return l.Name + "\x00#" + hex.EncodeToString(sum[:])
}

// lazyPeer is the request's client certificate, read on first use.
type lazyPeer struct {
	read bool
	sdk.Peer
}

// appendIdentity appends the verified client certificate's SPIFFE ID,
// else its subject, as "id:…"; without one, "ip:" and the client address.
// The peer is read from the host once per request, into *peer.
func appendIdentity(b []byte, req sdk.Request, cfg *policy.RateLimit, peer *lazyPeer) []byte {
	if !peer.read {
		peer.Peer, peer.read = sdk.TLSPeer(), true
	}
	if peer.Status == sdk.PeerVerified {
		if peer.SPIFFEID != "" {
			return append(append(b, "id:"...), peer.SPIFFEID...)
		}
		return append(append(b, "id:"...), peer.Subject...)
	}
	return append(append(b, "ip:"...), clientIP(req, cfg.TrustedProxies)...)
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
