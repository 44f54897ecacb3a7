// Package upstream holds the upstream pools of the data plane: one Pool per
// model.Backend, its endpoints, the load balancers that pick among them and
// the passive health state that ejects endpoints which refuse connections.
//
// # Notes
//
//   - Pools are keyed by model.Backend.Name and live in a Set that outlives
//     snapshots, so health state and counters survive a reload.
//   - Picking is lock-free: the endpoint list is an immutable slice behind an
//     atomic.Pointer; per-endpoint state is atomics. Only writers (Set.Sync,
//     Set.SetEndpoints) take a mutex.
//   - When every endpoint is ejected a Pool still picks one ("panic mode"):
//     passive health is a guess, and refusing all traffic on a guess turns a
//     partial outage into a total one.
package upstream

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicegw/sluice/core/internal/model"
)

// Default passive health settings, used when Options leaves them zero.
const (
	DefaultEjectBase = 10 * time.Second
	DefaultEjectMax  = 5 * time.Minute
)

// Options configure passive health for every pool of a Set.
type Options struct {
	// EjectBase is how long an endpoint is ejected after its first
	// connection failure; each further consecutive failure doubles it.
	// Zero means DefaultEjectBase.
	EjectBase time.Duration
	// EjectMax caps the ejection time. Zero means DefaultEjectMax.
	EjectMax time.Duration
	// Now returns the current time; nil means time.Now. Tests set it.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.EjectBase <= 0 {
		o.EjectBase = DefaultEjectBase
	}
	if o.EjectMax <= 0 {
		o.EjectMax = DefaultEjectMax
	}
	if o.EjectMax < o.EjectBase {
		o.EjectMax = o.EjectBase
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Endpoint is one upstream address ("ip:port") of a Pool. Its counters are
// safe for concurrent use. An Endpoint is shared by every snapshot that
// still lists its address, so its health state outlives reloads.
type Endpoint struct {
	addr string

	inflight atomic.Int64
	requests atomic.Uint64
	failures atomic.Uint64 // total connection failures
	// consecutive connection failures; reset by a success
	streak atomic.Uint32
	// ejectedUntil is a UnixNano deadline; 0 means healthy.
	ejectedUntil atomic.Int64

	_ [64]byte // keep hot counters of neighbouring endpoints off one cache line
}

// Addr returns the endpoint's "ip:port".
func (e *Endpoint) Addr() string { return e.addr }

// InFlight returns the number of picks not yet released with Done.
func (e *Endpoint) InFlight() int64 { return e.inflight.Load() }

// Done releases one pick of e. Call it exactly once per successful Pick,
// when the request to e has finished.
func (e *Endpoint) Done() { e.inflight.Add(-1) }

// ejected reports whether e is ejected at now (UnixNano).
func (e *Endpoint) ejected(now int64) bool {
	until := e.ejectedUntil.Load()
	return until != 0 && until > now
}

// EndpointStats is a point-in-time copy of an endpoint's state, for the
// admin API and tests.
type EndpointStats struct {
	Addr         string    `json:"addr"`
	InFlight     int64     `json:"inFlight"`
	Requests     uint64    `json:"requests"`
	Failures     uint64    `json:"failures"`
	EjectedUntil time.Time `json:"ejectedUntil,omitzero"`
}

// endpoints is an immutable list; a Pool swaps whole lists.
type endpoints struct {
	list []*Endpoint
}

// Pool is the set of endpoints of one backend plus its balancer. Pick,
// Failed, Succeeded and Stats are safe for concurrent use and never block;
// endpoint updates go through the owning Set.
type Pool struct {
	name string
	opts *Options

	policy atomic.Pointer[model.Balancer]
	eps    atomic.Pointer[endpoints]
	rr     atomic.Uint64
}

func newPool(name string, opts *Options) *Pool {
	p := &Pool{name: name, opts: opts}
	p.eps.Store(&endpoints{})
	rr := model.BalancerRoundRobin
	p.policy.Store(&rr)
	return p
}

// Name returns the backend name the pool serves ("namespace/service:port").
func (p *Pool) Name() string { return p.name }

// Len returns the number of endpoints currently in the pool.
func (p *Pool) Len() int { return len(p.eps.Load().list) }

// setPolicy sets the balancer; unknown or empty means round robin.
func (p *Pool) setPolicy(b model.Balancer) {
	if b != model.BalancerLeastRequest {
		b = model.BalancerRoundRobin
	}
	if cur := p.policy.Load(); *cur != b {
		p.policy.Store(&b)
	}
}

// setEndpoints replaces the endpoint list, reusing the Endpoint of every
// address that stays so its counters and health state survive. Callers hold
// the Set's mutex.
func (p *Pool) setEndpoints(addrs []string) {
	old := p.eps.Load().list
	byAddr := make(map[string]*Endpoint, len(old))
	for _, e := range old {
		byAddr[e.addr] = e
	}
	list := make([]*Endpoint, 0, len(addrs))
	seen := make(map[string]bool, len(addrs))
	for _, a := range addrs {
		if seen[a] {
			continue
		}
		seen[a] = true
		e := byAddr[a]
		if e == nil {
			e = &Endpoint{addr: a}
		}
		list = append(list, e)
	}
	p.eps.Store(&endpoints{list: list})
}

// Pick chooses an endpoint, counts it as in flight and returns it; the
// caller must call Done on it when the request ends. avoid, if non-nil, is
// skipped when any other endpoint exists (used to retry elsewhere). Pick
// returns nil only when the pool has no endpoints. When every candidate is
// ejected, Pick still returns one (panic mode).
func (p *Pool) Pick(avoid *Endpoint) *Endpoint {
	list := p.eps.Load().list
	var e *Endpoint
	switch len(list) {
	case 0:
		return nil
	case 1:
		e = list[0]
	default:
		if *p.policy.Load() == model.BalancerLeastRequest {
			e = p.pickP2C(list, avoid)
		} else {
			e = p.pickRR(list, avoid)
		}
	}
	e.inflight.Add(1)
	e.requests.Add(1)
	return e
}

// clock reads the time at most once per pick, and only when some endpoint
// is or was ejected.
type clock struct {
	now  func() time.Time
	nano int64
}

func (c *clock) get() int64 {
	if c.nano == 0 {
		c.nano = c.now().UnixNano()
	}
	return c.nano
}

func (e *Endpoint) usable(c *clock) bool {
	until := e.ejectedUntil.Load()
	return until == 0 || until <= c.get()
}

func (p *Pool) pickRR(list []*Endpoint, avoid *Endpoint) *Endpoint {
	n := uint64(len(list))
	start := p.rr.Add(1) - 1
	c := clock{now: p.opts.Now}
	var fallback *Endpoint
	for i := range n {
		e := list[(start+i)%n]
		if e == avoid {
			continue
		}
		if e.usable(&c) {
			return e
		}
		if fallback == nil {
			fallback = e
		}
	}
	if fallback != nil {
		return fallback // panic mode: all others ejected
	}
	return list[start%n] // only avoid is left
}

func (p *Pool) pickP2C(list []*Endpoint, avoid *Endpoint) *Endpoint {
	n := len(list)
	i := rand.IntN(n)
	j := rand.IntN(n - 1)
	if j >= i {
		j++
	}
	a, b := list[i], list[j]
	if a == avoid {
		a, b = b, nil
	} else if b == avoid {
		b = nil
	}
	if b == nil && n > 2 {
		// A third candidate, distinct from list[i] and list[j].
		k := rand.IntN(n - 2)
		lo, hi := min(i, j), max(i, j)
		if k >= lo {
			k++
		}
		if k >= hi {
			k++
		}
		b = list[k]
	}
	c := clock{now: p.opts.Now}
	ua := a.usable(&c)
	ub := b != nil && b.usable(&c)
	switch {
	case ua && ub:
		if b.inflight.Load() < a.inflight.Load() {
			return b
		}
		return a
	case ua:
		return a
	case ub:
		return b
	}
	// Both candidates are ejected: look for any usable endpoint before
	// falling back to panic mode.
	start := rand.IntN(n)
	for k := range n {
		e := list[(start+k)%n]
		if e != avoid && e.usable(&c) {
			return e
		}
	}
	return a
}

// Failed reports that connecting to e failed (refused, unreachable, dial
// timeout). The endpoint is ejected for EjectBase, doubled for each further
// consecutive failure up to EjectMax. Failures reported while e is already
// ejected (requests that were in flight when it went down) do not extend
// the ejection.
func (p *Pool) Failed(e *Endpoint) {
	e.failures.Add(1)
	now := p.opts.Now().UnixNano()
	old := e.ejectedUntil.Load()
	if old != 0 && old > now {
		return // already ejected
	}
	streak := e.streak.Load() + 1
	d := p.opts.EjectBase
	for i := uint32(1); i < streak && d < p.opts.EjectMax; i++ {
		d *= 2
	}
	d = min(d, p.opts.EjectMax)
	// Of concurrent failures of a healthy endpoint, one ejects it and
	// advances the streak; the others see it ejected.
	if e.ejectedUntil.CompareAndSwap(old, now+int64(d)) {
		e.streak.Store(streak)
	}
}

// Succeeded reports that a connection to e worked; it clears e's failure
// streak and ejection. It writes only when there is something to clear, so
// the common case costs two loads.
func (p *Pool) Succeeded(e *Endpoint) {
	if e.streak.Load() != 0 {
		e.streak.Store(0)
	}
	if e.ejectedUntil.Load() != 0 {
		e.ejectedUntil.Store(0)
	}
}

// Stats returns a copy of every endpoint's state, in endpoint order.
func (p *Pool) Stats() []EndpointStats {
	list := p.eps.Load().list
	out := make([]EndpointStats, len(list))
	for i, e := range list {
		out[i] = EndpointStats{
			Addr:     e.addr,
			InFlight: e.inflight.Load(),
			Requests: e.requests.Load(),
			Failures: e.failures.Load(),
		}
		if u := e.ejectedUntil.Load(); u != 0 {
			out[i].EjectedUntil = time.Unix(0, u)
		}
	}
	return out
}

// Set owns the pools of every backend, keyed by model.Backend.Name. It is
// safe for concurrent use; its methods take a mutex and are meant for the
// control plane, never the request path.
type Set struct {
	opts Options

	mu    sync.Mutex
	pools map[string]*Pool
}

// NewSet returns an empty Set. It starts nothing.
func NewSet(opts Options) *Set {
	return &Set{opts: opts.withDefaults(), pools: map[string]*Pool{}}
}

// Sync makes the Set hold exactly the backends of snap (its routes', their
// canaries' and its default backend): existing pools are kept and their endpoints and
// balancer updated in place, new ones are created, pools of backends no
// longer referenced are dropped from the Set (requests still holding them
// finish normally). It returns the pools by backend name, ready for
// route.Compile. A nil snap empties the Set.
func (s *Set) Sync(snap *model.Snapshot) map[string]*Pool {
	backends := map[string]*model.Backend{}
	if snap != nil {
		add := func(b *model.Backend) {
			if b != nil {
				if _, ok := backends[b.Name]; !ok {
					backends[b.Name] = b
				}
			}
		}
		add(snap.DefaultBackend)
		for _, vh := range snap.Hosts {
			if vh == nil {
				continue
			}
			for _, r := range vh.Routes {
				if r != nil {
					add(r.Backend)
					if r.Canary != nil {
						add(r.Canary.Backend)
					}
				}
			}
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]*Pool, len(backends))
	for name, b := range backends {
		p := s.pools[name]
		if p == nil {
			p = newPool(name, &s.opts)
		}
		p.setPolicy(b.Balancer)
		p.setEndpoints(b.Endpoints)
		out[name] = p
	}
	s.pools = out
	// Return a copy so the caller may keep it while later Syncs replace
	// s.pools.
	cp := make(map[string]*Pool, len(out))
	for k, v := range out {
		cp[k] = v
	}
	return cp
}

// Get returns the pool of the named backend, or nil.
func (s *Set) Get(name string) *Pool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pools[name]
}

// SetEndpoints replaces the endpoints of the named backend in place: the
// EndpointSlice fast path, which needs no new route table. It reports
// false when the Set has no such backend (the next Sync creates it).
func (s *Set) SetEndpoints(name string, addrs []string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pools[name]
	if p == nil {
		return false
	}
	p.setEndpoints(addrs)
	return true
}
