package route

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/textproto"
	"regexp"

	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/core/internal/upstream"
)

// Canary is a compiled model.Canary: a route's alternative backend and the
// rule that selects it per request. It is immutable and safe for
// concurrent use.
type Canary struct {
	spec    *model.Canary
	header  string // canonical form of spec.Header; "" for none
	pattern *regexp.Regexp
	pool    *upstream.Pool
}

func compileCanary(c *model.Canary, resolve func(*model.Backend) (target, error)) (*Canary, error) {
	if c.Backend == nil {
		return nil, fmt.Errorf("nil backend")
	}
	if c.WeightTotal < 1 || c.Weight < 0 || c.Weight > c.WeightTotal {
		return nil, fmt.Errorf("weight %d of %d is out of range", c.Weight, c.WeightTotal)
	}
	tg, err := resolve(c.Backend)
	if err != nil {
		return nil, err
	}
	out := &Canary{spec: c, pool: tg.pool}
	if c.Header != "" {
		out.header = textproto.CanonicalMIMEHeaderKey(c.Header)
	}
	if c.HeaderPattern != "" {
		if out.pattern, err = regexp.Compile(c.HeaderPattern); err != nil {
			return nil, fmt.Errorf("header pattern: %w", err)
		}
	}
	return out, nil
}

// Backend returns the canary's backend.
func (c *Canary) Backend() *model.Backend { return c.spec.Backend }

// Pool returns the canary backend's pool.
func (c *Canary) Pool() *upstream.Pool { return c.pool }

// Selected reports whether r goes to the canary, as ingress-nginx decides:
// the header first, then the cookie, then a weighted random draw.
func (c *Canary) Selected(r *http.Request) bool { return c.selected(r, rand.IntN) }

// selected is Selected with the random source intn (0 <= intn(n) < n).
func (c *Canary) selected(r *http.Request, intn func(int) int) bool {
	s := c.spec
	if c.header != "" {
		if vs := r.Header[c.header]; len(vs) > 0 {
			v := vs[0]
			switch {
			case s.HeaderValue != "":
				if v == s.HeaderValue {
					return true
				}
			case c.pattern != nil:
				if c.pattern.MatchString(v) {
					return true
				}
			case v == "always":
				return true
			case v == "never":
				return false
			}
		}
	}
	if s.Cookie != "" {
		if ck, err := r.Cookie(s.Cookie); err == nil {
			switch ck.Value {
			case "always":
				return true
			case "never":
				return false
			}
		}
	}
	return s.Weight > 0 && intn(s.WeightTotal) < s.Weight
}
