// Package watchdog enforces per-call deadlines for many concurrent guest
// calls with a single goroutine.
//
// A caller registers a Target once (when an instance is created), then arms
// and disarms its Entry around every guest call. Arming reads the monotonic
// clock and stores one atomic; it never allocates, never blocks and never
// wakes the watchdog goroutine. The goroutine scans armed entries every
// tick and calls Expire on those past their deadline, exactly once per
// entry. It runs only while at least one entry is registered.
package watchdog

import (
	"sync"
	"sync/atomic"
	"time"
)

// Target is what an overdue call is reported to.
type Target interface {
	// Expire is called at most once per Entry, from the watchdog goroutine,
	// when an armed call passes its deadline. It must not block: it should
	// only signal the running call (e.g. close a channel).
	Expire()
}

// epoch anchors the monotonic clock: time.Since(epoch) never jumps with the
// wall clock.
var epoch = time.Now()

// Now returns monotonic nanoseconds since package start.
func Now() int64 { return int64(time.Since(epoch)) }

const expired = -1 // deadline value once Expire has been called

// Entry is the per-target deadline slot. The zero deadline means disarmed.
type Entry struct {
	deadline atomic.Int64
	target   Target
	index    int // position in Watchdog.entries, guarded by Watchdog.mu
}

// Arm sets the deadline of the next call to now+timeout. It must not be
// called on an expired entry (the target is dead and must be discarded).
func (e *Entry) Arm(timeout time.Duration) {
	e.deadline.Store(Now() + int64(timeout))
}

// Disarm clears the deadline and reports whether the call was expired by
// the watchdog (in which case the target must be discarded, whatever the
// call returned).
func (e *Entry) Disarm() (wasExpired bool) {
	return e.deadline.Swap(0) == expired
}

// Expired reports whether Expire was called for this entry.
func (e *Entry) Expired() bool { return e.deadline.Load() == expired }

// Watchdog owns one goroutine that expires overdue entries.
type Watchdog struct {
	tick time.Duration

	mu      sync.Mutex
	entries []*Entry
	running bool
	stop    chan struct{}
	stopped chan struct{}
}

// New returns a watchdog that scans every tick (minimum 1 ms). It starts no
// goroutine until the first Register.
func New(tick time.Duration) *Watchdog {
	if tick < time.Millisecond {
		tick = time.Millisecond
	}
	return &Watchdog{tick: tick}
}

// Register adds t and returns its entry, disarmed. It starts the watchdog
// goroutine if it is not running. Safe for concurrent use.
func (w *Watchdog) Register(t Target) *Entry {
	e := &Entry{target: t}
	w.mu.Lock()
	e.index = len(w.entries)
	w.entries = append(w.entries, e)
	if !w.running {
		w.running = true
		w.stop = make(chan struct{})
		w.stopped = make(chan struct{})
		go w.loop(w.stop, w.stopped)
	}
	w.mu.Unlock()
	return e
}

// Unregister removes e. When no entry is left the goroutine exits (this
// call waits for it). Unregistering twice is a no-op.
func (w *Watchdog) Unregister(e *Entry) {
	w.mu.Lock()
	i := e.index
	if i < 0 || i >= len(w.entries) || w.entries[i] != e {
		w.mu.Unlock()
		return
	}
	last := len(w.entries) - 1
	w.entries[i] = w.entries[last]
	w.entries[i].index = i
	w.entries[last] = nil
	w.entries = w.entries[:last]
	e.index = -1
	var stopped chan struct{}
	if len(w.entries) == 0 && w.running {
		w.running = false
		close(w.stop)
		stopped = w.stopped
	}
	w.mu.Unlock()
	if stopped != nil {
		<-stopped
	}
}

// Len returns the number of registered entries.
func (w *Watchdog) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.entries)
}

func (w *Watchdog) loop(stop <-chan struct{}, stopped chan<- struct{}) {
	defer close(stopped)
	t := time.NewTicker(w.tick)
	defer t.Stop()
	var due []*Entry
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		now := Now()
		due = due[:0]
		w.mu.Lock()
		for _, e := range w.entries {
			d := e.deadline.Load()
			if d > 0 && now > d && e.deadline.CompareAndSwap(d, expired) {
				due = append(due, e)
			}
		}
		w.mu.Unlock()
		for _, e := range due {
			e.target.Expire()
		}
		clear(due)
	}
}
