package watchdog

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type target struct{ n atomic.Int32 }

func (t *target) Expire() { t.n.Add(1) }

func TestExpireOnce(t *testing.T) {
	w := New(time.Millisecond)
	tg := &target{}
	e := w.Register(tg)
	defer w.Unregister(e)
	e.Arm(5 * time.Millisecond)
	deadline := time.Now().Add(5 * time.Second)
	for tg.n.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("never expired")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	if n := tg.n.Load(); n != 1 {
		t.Errorf("expired %d times, want 1", n)
	}
	if !e.Disarm() {
		t.Error("Disarm did not report the expiry")
	}
}

func TestDisarmedNeverExpires(t *testing.T) {
	w := New(time.Millisecond)
	tg := &target{}
	e := w.Register(tg)
	defer w.Unregister(e)
	for i := 0; i < 1000; i++ {
		e.Arm(time.Hour)
		if e.Disarm() {
			t.Fatal("expired")
		}
	}
	time.Sleep(10 * time.Millisecond)
	if tg.n.Load() != 0 {
		t.Error("a disarmed entry expired")
	}
}

// TestGoroutineStops: the watchdog goroutine exists only while entries are
// registered.
func TestGoroutineStops(t *testing.T) {
	before := runtime.NumGoroutine()
	w := New(time.Millisecond)
	var es []*Entry
	for i := 0; i < 10; i++ {
		es = append(es, w.Register(&target{}))
	}
	if got := runtime.NumGoroutine(); got != before+1 {
		t.Errorf("goroutines %d with entries, want %d", got, before+1)
	}
	for _, e := range es {
		w.Unregister(e)
		w.Unregister(e) // idempotent
	}
	if w.Len() != 0 {
		t.Errorf("%d entries left", w.Len())
	}
	// Unregister waited for the loop to return; the goroutine itself may
	// take a moment to disappear from the count.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() != before {
		if time.Now().After(deadline) {
			t.Fatalf("goroutines %d, want %d", runtime.NumGoroutine(), before)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestHammer(t *testing.T) {
	w := New(time.Millisecond)
	var wg sync.WaitGroup
	var expired atomic.Int64
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				e := w.Register(&target{})
				for j := 0; j < 20; j++ {
					d := time.Hour
					if (g+i+j)%97 == 0 {
						d = 0 // overdue at once
					}
					e.Arm(d)
					if d == 0 {
						time.Sleep(3 * time.Millisecond)
					}
					if e.Disarm() {
						expired.Add(1)
						break // a dead target is never armed again
					}
				}
				w.Unregister(e)
			}
		}(g)
	}
	wg.Wait()
	if w.Len() != 0 {
		t.Errorf("%d entries left", w.Len())
	}
	if expired.Load() == 0 {
		t.Error("no overdue call was expired")
	}
}

func BenchmarkArmDisarm(b *testing.B) {
	w := New(time.Millisecond)
	e := w.Register(&target{})
	defer w.Unregister(e)
	b.ReportAllocs()
	for b.Loop() {
		e.Arm(time.Second)
		e.Disarm()
	}
}
