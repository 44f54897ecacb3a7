// Package pool is a bounded pool of expensive, single-user objects (guest
// instances) that grows with concurrent demand up to a maximum, keeps a
// minimum warm, and shrinks idle objects back to the minimum.
//
// Objects are created off the request path: Get never calls New itself. When
// no idle object is available and the pool is below its maximum, Get starts
// one background creation and waits for whichever comes first: that new
// object or one returned by another user. After each Get that empties the
// idle list, one spare is created ahead of demand, so a warm pool with
// steady traffic performs no creation on the caller's goroutine.
//
// Unlike sync.Pool, nothing is ever dropped without Close: every object the
// pool created is either in use, idle, or closed by the pool.
package pool

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrClosed is returned by Get after Close.
var ErrClosed = errors.New("pool closed")

// ErrTimeout is returned by Get when no object became available in time.
var ErrTimeout = errors.New("no instance available")

// Config sizes a pool. Zero values take the defaults noted.
type Config[T any] struct {
	Min, Max    int           // Max defaults to 1 and is raised to Min
	IdleTimeout time.Duration // idle objects above Min are closed after this; default 30s
	Wait        time.Duration // how long Get waits when at Max; default 1s
	// New creates an object. It is called from pool goroutines only (and
	// from Warm), never concurrently with Close's cleanup of that object.
	New func(ctx context.Context) (T, error)
	// Close releases an object. Called once per object.
	Close func(T)
	// OnError, if set, is told about background creation failures.
	OnError func(error)
}

// Stats are plain counters for metrics.
type Stats struct {
	Size           int    // live objects: idle + in use
	InUse          int    // handed out by Get and not yet returned
	Idle           int    // ready in the pool
	Waiting        int    // Get calls currently waiting
	Creating       int    // background creations in flight
	Instantiations uint64 // objects created successfully
	CreateErrors   uint64 // failed creations
	Discards       uint64 // objects closed by Discard (broken)
	Shrinks        uint64 // idle objects closed by the idle timeout
	Timeouts       uint64 // Get calls that gave up waiting
}

type idleObj[T any] struct {
	v     T
	since time.Time
}

type result[T any] struct {
	v   T
	err error
}

// Pool is safe for concurrent use.
type Pool[T any] struct {
	cfg Config[T]

	mu       sync.Mutex
	idle     []idleObj[T] // LIFO: the most recently used object is warmest
	inUse    int
	creating int
	waiters  []chan result[T]
	closed   bool
	timer    *time.Timer
	st       Stats
	drained  chan struct{}
}

// New returns an empty pool. It starts nothing; call Warm to create Min
// objects.
func New[T any](cfg Config[T]) *Pool[T] {
	if cfg.Min < 0 {
		cfg.Min = 0
	}
	if cfg.Max < 1 {
		cfg.Max = 1
	}
	if cfg.Max < cfg.Min {
		cfg.Max = cfg.Min
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 30 * time.Second
	}
	if cfg.Wait <= 0 {
		cfg.Wait = time.Second
	}
	return &Pool[T]{cfg: cfg, drained: make(chan struct{})}
}

// Warm creates objects on the caller's goroutine until Min are live. It
// returns the first creation error.
func (p *Pool[T]) Warm(ctx context.Context) error {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return ErrClosed
		}
		if p.sizeLocked() >= p.cfg.Min {
			p.mu.Unlock()
			return nil
		}
		p.creating++
		p.mu.Unlock()
		v, err := p.cfg.New(ctx)
		p.mu.Lock()
		p.creating--
		if err != nil {
			p.st.CreateErrors++
			p.mu.Unlock()
			return err
		}
		p.st.Instantiations++
		p.putLocked(v) // unlocks
	}
}

func (p *Pool[T]) sizeLocked() int { return len(p.idle) + p.inUse + p.creating }

// Get returns an object for exclusive use until Put or Discard. It waits up
// to Config.Wait (or until ctx is done) when the pool is at its maximum or
// the object is still being created.
func (p *Pool[T]) Get(ctx context.Context) (T, error) {
	var zero T
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return zero, ErrClosed
	}
	if n := len(p.idle); n > 0 {
		v := p.idle[n-1].v
		p.idle[n-1] = idleObj[T]{}
		p.idle = p.idle[:n-1]
		p.inUse++
		if n == 1 {
			p.maybeGrowLocked() // a spare ahead of demand
		}
		p.mu.Unlock()
		return v, nil
	}
	ch := make(chan result[T], 1)
	p.waiters = append(p.waiters, ch)
	p.maybeGrowLocked()
	p.mu.Unlock()

	t := time.NewTimer(p.cfg.Wait)
	defer t.Stop()
	var err error
	select {
	case r := <-ch:
		return r.v, r.err
	case <-t.C:
		err = ErrTimeout
	case <-ctx.Done():
		err = ctx.Err()
	}
	p.mu.Lock()
	for i, w := range p.waiters {
		if w == ch {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			p.st.Timeouts++
			p.mu.Unlock()
			return zero, err
		}
	}
	p.mu.Unlock()
	// Already handed a result: take it (it is ours now).
	r := <-ch
	return r.v, r.err
}

// maybeGrowLocked starts one background creation when it is useful and
// the pool is below Max: callers wait and not enough creations are in
// flight for them, or no spare is idle nor coming, or the pool is below Min.
func (p *Pool[T]) maybeGrowLocked() {
	if p.closed || p.sizeLocked() >= p.cfg.Max {
		return
	}
	switch {
	case len(p.waiters) > p.creating:
	case len(p.waiters) == 0 && len(p.idle) == 0 && p.creating == 0:
	case p.sizeLocked() < p.cfg.Min:
	default:
		return
	}
	p.creating++
	go p.create()
}

func (p *Pool[T]) create() {
	v, err := p.cfg.New(context.Background())
	p.mu.Lock()
	p.creating--
	if err != nil {
		p.st.CreateErrors++
		// Nothing else may ever arrive for a waiter if the pool is empty.
		if len(p.waiters) > 0 && len(p.idle)+p.inUse == 0 {
			w := p.waiters[0]
			p.waiters = p.waiters[1:]
			w <- result[T]{err: err}
		}
		p.checkDrainedLocked()
		p.mu.Unlock()
		if p.cfg.OnError != nil {
			p.cfg.OnError(err)
		}
		return
	}
	p.st.Instantiations++
	if p.closed {
		p.mu.Unlock()
		p.cfg.Close(v)
		p.mu.Lock()
		p.checkDrainedLocked()
		p.mu.Unlock()
		return
	}
	p.putLocked(v)
}

// Put returns a healthy object to the pool.
func (p *Pool[T]) Put(v T) {
	p.mu.Lock()
	p.inUse--
	p.putLocked(v)
}

// putLocked hands v to a waiter or the idle list, then unlocks.
func (p *Pool[T]) putLocked(v T) {
	if p.closed {
		p.mu.Unlock()
		p.cfg.Close(v)
		p.mu.Lock()
		p.checkDrainedLocked()
		p.mu.Unlock()
		return
	}
	if len(p.waiters) > 0 {
		w := p.waiters[0]
		copy(p.waiters, p.waiters[1:])
		p.waiters[len(p.waiters)-1] = nil
		p.waiters = p.waiters[:len(p.waiters)-1]
		p.inUse++
		w <- result[T]{v: v}
		p.mu.Unlock()
		return
	}
	p.idle = append(p.idle, idleObj[T]{v: v, since: time.Now()})
	if len(p.idle)+p.inUse > p.cfg.Min && p.timer == nil {
		p.timer = time.AfterFunc(p.cfg.IdleTimeout, p.shrink)
	}
	p.mu.Unlock()
}

// Discard closes a broken object instead of returning it and creates a
// replacement in the background when needed.
func (p *Pool[T]) Discard(v T) {
	p.cfg.Close(v)
	p.mu.Lock()
	p.inUse--
	p.st.Discards++
	p.maybeGrowLocked()
	p.checkDrainedLocked()
	p.mu.Unlock()
}

// shrink closes objects idle for longer than IdleTimeout, keeping Min.
func (p *Pool[T]) shrink() {
	p.mu.Lock()
	p.timer = nil
	if p.closed {
		p.mu.Unlock()
		return
	}
	cutoff := time.Now().Add(-p.cfg.IdleTimeout)
	var victims []T
	// The oldest idle objects are at the front.
	for len(p.idle) > 0 && p.sizeLocked() > p.cfg.Min && p.idle[0].since.Before(cutoff) {
		victims = append(victims, p.idle[0].v)
		p.idle[0] = idleObj[T]{}
		p.idle = p.idle[1:]
		p.st.Shrinks++
	}
	if p.sizeLocked() > p.cfg.Min && len(p.idle) > 0 {
		wait := time.Until(p.idle[0].since.Add(p.cfg.IdleTimeout))
		if wait < time.Millisecond {
			wait = time.Millisecond
		}
		p.timer = time.AfterFunc(wait, p.shrink)
	}
	p.mu.Unlock()
	for _, v := range victims {
		p.cfg.Close(v)
	}
}

// Stats returns a snapshot of the counters.
func (p *Pool[T]) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.st
	s.Idle = len(p.idle)
	s.InUse = p.inUse
	s.Creating = p.creating
	s.Size = len(p.idle) + p.inUse
	s.Waiting = len(p.waiters)
	return s
}

// Close closes idle objects now and every in-use object when it is
// returned; waiting Get calls fail with ErrClosed. Drained is closed once
// nothing is left. Close is idempotent and does not wait for in-use objects.
func (p *Pool[T]) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	idle := p.idle
	p.idle = nil
	for _, w := range p.waiters {
		w <- result[T]{err: ErrClosed}
	}
	p.waiters = nil
	p.mu.Unlock()
	for _, o := range idle {
		p.cfg.Close(o.v)
	}
	p.mu.Lock()
	p.checkDrainedLocked()
	p.mu.Unlock()
}

func (p *Pool[T]) checkDrainedLocked() {
	if p.closed && p.inUse == 0 && p.creating == 0 && len(p.idle) == 0 {
		select {
		case <-p.drained:
		default:
			close(p.drained)
		}
	}
}

// Drained is closed after Close once every object has been closed.
func (p *Pool[T]) Drained() <-chan struct{} { return p.drained }
