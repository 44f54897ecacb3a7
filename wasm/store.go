package wasm

import (
	"context"
	"math"
	"sync"
	"time"
)

// Limit is a token bucket: Rate tokens are added every Period, up to Burst.
type Limit struct {
	Rate   int
	Period time.Duration
	Burst  int
}

// Decision is the result of a token bucket take.
type Decision struct {
	Allowed    bool
	Remaining  int           // whole tokens left after this take
	RetryAfter time.Duration // when denied: until one token is available
}

// Store holds the shared state behind the sluice extension: token buckets
// and counters. Keys are opaque strings already namespaced by filter name.
//
// Implementations must be safe for concurrent use, must not block longer
// than ctx allows (it is the request's context) and should keep each call
// short: it runs on the request path inside a guest call. An error makes
// the host function return -1 to the guest, which decides what to do (the
// guest is not trapped). The in-memory Store is per process; a Redis-backed
// one shares state across replicas.
type Store interface {
	// Take removes one token from the bucket at key, creating it full.
	Take(ctx context.Context, key string, l Limit) (Decision, error)
	// Add atomically adds delta to the counter at key (created at zero)
	// and returns the new value.
	Add(ctx context.Context, key string, delta int64) (int64, error)
}

// Metrics receives guest metric increments (sluice.metric_add). Add must be
// safe for concurrent use and must not block.
type Metrics interface {
	Add(filter, name string, delta int64)
}

// MemoryStore is the in-process Store. Buckets that are full again are
// forgotten by a sweep every 4096 takes, so per-client keys do not grow the
// map without bound; counters live until the process ends.
type MemoryStore struct {
	now func() time.Time

	mu       sync.Mutex
	buckets  map[string]*bucket
	counters map[string]int64
	takes    int
}

type bucket struct {
	tokens float64
	last   time.Time
	l      Limit
}

// NewMemoryStore returns an empty in-memory store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{now: time.Now, buckets: map[string]*bucket{}, counters: map[string]int64{}}
}

func (b *bucket) refill(now time.Time) {
	el := now.Sub(b.last)
	if el > 0 {
		b.tokens = math.Min(float64(b.l.Burst), b.tokens+float64(b.l.Rate)*el.Seconds()/b.l.Period.Seconds())
		b.last = now
	}
}

// Take implements Store.
func (s *MemoryStore) Take(_ context.Context, key string, l Limit) (Decision, error) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buckets[key]
	if b == nil || b.l != l {
		b = &bucket{tokens: float64(l.Burst), last: now, l: l}
		s.buckets[key] = b
	}
	b.refill(now)
	s.takes++
	if s.takes%4096 == 0 {
		s.sweep(now)
	}
	if b.tokens >= 1 {
		b.tokens--
		return Decision{Allowed: true, Remaining: int(b.tokens)}, nil
	}
	need := (1 - b.tokens) * b.l.Period.Seconds() / float64(b.l.Rate)
	return Decision{RetryAfter: time.Duration(math.Ceil(need * float64(time.Second)))}, nil
}

func (s *MemoryStore) sweep(now time.Time) {
	for k, b := range s.buckets {
		b.refill(now)
		if b.tokens >= float64(b.l.Burst) {
			delete(s.buckets, k)
		}
	}
}

// Add implements Store.
func (s *MemoryStore) Add(_ context.Context, key string, delta int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counters[key] += delta
	return s.counters[key], nil
}

// NopMetrics discards metrics.
type NopMetrics struct{}

// Add implements Metrics.
func (NopMetrics) Add(string, string, int64) {}

// MemoryMetrics keeps metric totals in memory, for tests and an admin page.
type MemoryMetrics struct {
	mu sync.Mutex
	m  map[[2]string]int64
}

// Add implements Metrics.
func (m *MemoryMetrics) Add(filter, name string, delta int64) {
	m.mu.Lock()
	if m.m == nil {
		m.m = map[[2]string]int64{}
	}
	m.m[[2]string{filter, name}] += delta
	m.mu.Unlock()
}

// Get returns the total of filter's metric name.
func (m *MemoryMetrics) Get(filter, name string) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.m[[2]string{filter, name}]
}

// Interface guards.
var (
	_ Store   = (*MemoryStore)(nil)
	_ Metrics = NopMetrics{}
	_ Metrics = (*MemoryMetrics)(nil)
)
