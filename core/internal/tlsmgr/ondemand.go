package tlsmgr

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// On-demand decision errors. A denied handshake fails with one of these
// (wrapped by certmagic) without contacting any CA.
var (
	ErrNotServed   = errors.New("host is not served by any route")
	ErrRateLimited = errors.New("on-demand issuance rate limit reached")
)

// How long a decision is remembered. Any Update forgets them all.
const (
	allowTTL    = time.Hour
	denyTTL     = time.Minute
	maxDecided  = 10000 // a flood of random names cannot grow the cache past this
	askBodySize = 1 << 10
)

// decide is certmagic's OnDemand.DecisionFunc. It runs for every name not in
// the memory cache, during the handshake, so it is cached and never blocks
// on anything but the optional ask URL.
func (m *Manager) decide(ctx context.Context, name string) error {
	name = normalize(name)
	v := m.cur.Load()
	if v.managed[name] {
		return nil // managed ahead of time; on-demand only waits for it
	}
	if d, ok := m.decisions.get(name, v.gen, time.Now()); ok {
		if d.err != nil {
			m.odDenied.Add(1)
		}
		return d.err
	}
	err := m.allowed(ctx, v, name)
	if err == nil && !m.limiter.take() {
		// Not cached: the name may be allowed once the bucket refills.
		m.rateLimited.Add(1)
		m.log.Warn("tls: on-demand issuance refused", "host", name, "reason", ErrRateLimited.Error())
		return ErrRateLimited
	}
	m.decisions.put(name, v.gen, err, time.Now())
	if err != nil {
		m.odDenied.Add(1)
		m.log.Info("tls: on-demand issuance refused", "host", name, "reason", err.Error())
		return err
	}
	m.odAllowed.Add(1)
	return nil
}

// allowed decides one name: served by a route, else the ask URL's answer.
func (m *Manager) allowed(ctx context.Context, v *view, name string) error {
	if v.routed.match(name) {
		return nil
	}
	if m.askURL == nil {
		return fmt.Errorf("%q: %w", name, ErrNotServed)
	}
	u := *m.askURL
	q := u.Query()
	q.Set("domain", name)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("ask url: %w", err)
	}
	resp, err := m.ask.Do(req)
	if err != nil {
		return fmt.Errorf("ask %s: %w", u.Redacted(), err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%q: not served by any route and ask %s answered %d", name, m.opts.OnDemand.Ask, resp.StatusCode)
	}
	return nil
}

// hostSet matches names against exact hosts and one-label wildcards, the
// route table's rule (DESIGN.md "Route matching").
type hostSet struct {
	exact map[string]bool
	wild  map[string]bool // "example.com" for "*.example.com"
}

func newHostSet(hosts []string) hostSet {
	s := hostSet{exact: map[string]bool{}, wild: map[string]bool{}}
	for _, h := range hosts {
		h = normalize(h)
		if h == "" {
			continue // the catch-all rules do not make every name routable
		}
		if base, ok := strings.CutPrefix(h, "*."); ok {
			s.wild[base] = true
			continue
		}
		s.exact[h] = true
	}
	return s
}

func (s hostSet) match(name string) bool {
	if s.exact[name] {
		return true
	}
	_, parent, ok := strings.Cut(name, ".")
	return ok && s.wild[parent]
}

func normalize(name string) string {
	return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(name), "."))
}

// decisionCache remembers decisions per view generation.
type decisionCache struct {
	mu sync.Mutex
	m  map[string]decision
}

type decision struct {
	err     error
	gen     uint64
	expires time.Time
}

func (c *decisionCache) get(name string, gen uint64, now time.Time) (decision, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.m[name]
	if !ok || d.gen != gen || now.After(d.expires) {
		return decision{}, false
	}
	return d, true
}

func (c *decisionCache) put(name string, gen uint64, err error, now time.Time) {
	ttl := allowTTL
	if err != nil {
		ttl = denyTTL
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxDecided {
		c.m = make(map[string]decision)
	}
	c.m[name] = decision{err: err, gen: gen, expires: now.Add(ttl)}
}

func (c *decisionCache) reset() {
	c.mu.Lock()
	c.m = nil
	c.mu.Unlock()
}

// bucket is a token bucket: burst tokens, refilled at burst per interval.
type bucket struct {
	mu     sync.Mutex
	burst  float64
	per    time.Duration // one token every per
	tokens float64
	last   time.Time
	now    func() time.Time
}

func newBucket(burst int, interval time.Duration, now func() time.Time) *bucket {
	return &bucket{burst: float64(burst), per: interval / time.Duration(burst), tokens: float64(burst), last: now(), now: now}
}

// take removes a token if there is one.
func (b *bucket) take() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if b.per > 0 {
		b.tokens = min(b.burst, b.tokens+float64(now.Sub(b.last))/float64(b.per))
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
