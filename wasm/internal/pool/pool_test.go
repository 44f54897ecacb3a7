package pool

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// obj is a pooled object that detects concurrent use and double close.
type obj struct {
	id     int
	inUse  atomic.Int32
	closed atomic.Int32
}

type counter struct {
	created, closed atomic.Int64
	fail            atomic.Bool
	delay           time.Duration
}

func (c *counter) config(min, max int) Config[*obj] {
	return Config[*obj]{
		Min: min, Max: max, IdleTimeout: time.Hour, Wait: time.Second,
		New: func(context.Context) (*obj, error) {
			if c.delay > 0 {
				time.Sleep(c.delay)
			}
			if c.fail.Load() {
				return nil, errors.New("boom")
			}
			return &obj{id: int(c.created.Add(1))}, nil
		},
		Close: func(o *obj) {
			if o.closed.Add(1) != 1 {
				panic("closed twice")
			}
			c.closed.Add(1)
		},
	}
}

func TestWarmAndReuse(t *testing.T) {
	c := &counter{}
	p := New(c.config(2, 4))
	if err := p.Warm(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := p.Stats(); s.Idle != 2 || s.Instantiations != 2 {
		t.Fatalf("after warm: %+v", s)
	}
	// Sequential traffic reuses the warm object: no new creations beyond
	// the spare made when the idle list empties.
	for i := 0; i < 100; i++ {
		o, err := p.Get(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		p.Put(o)
	}
	if s := p.Stats(); s.Instantiations != 2 {
		t.Errorf("sequential use created objects: %+v", s)
	}
	p.Close()
	<-p.Drained()
	if c.created.Load() != c.closed.Load() {
		t.Errorf("created %d, closed %d", c.created.Load(), c.closed.Load())
	}
}

func TestGrowWaitTimeout(t *testing.T) {
	c := &counter{}
	cfg := c.config(0, 2)
	cfg.Wait = 50 * time.Millisecond
	p := New(cfg)
	a, err := p.Get(context.Background()) // cold: created in the background, waited for
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Get(context.Background()); !errors.Is(err, ErrTimeout) {
		t.Fatalf("at max: err = %v, want ErrTimeout", err)
	}
	// A waiter gets the next returned object.
	got := make(chan *obj)
	go func() {
		o, err := p.Get(context.Background())
		if err != nil {
			t.Error(err)
		}
		got <- o
	}()
	waitUntil(t, func() bool { return p.Stats().Waiting == 1 })
	p.Put(a)
	if o := <-got; o != a {
		t.Errorf("waiter got %v, want the returned object", o)
	}
	p.Discard(b)
	p.Put(a)
	s := p.Stats()
	if s.Timeouts != 1 || s.Discards != 1 || s.Size > 2 {
		t.Errorf("stats %+v", s)
	}
	p.Close()
	<-p.Drained()
	if c.created.Load() != c.closed.Load() {
		t.Errorf("created %d, closed %d", c.created.Load(), c.closed.Load())
	}
}

func TestCreateErrorReachesWaiter(t *testing.T) {
	c := &counter{}
	c.fail.Store(true)
	p := New(c.config(0, 1))
	if _, err := p.Get(context.Background()); err == nil || err.Error() != "boom" {
		t.Fatalf("err = %v, want boom", err)
	}
	if err := p.Warm(context.Background()); err != nil {
		t.Fatal(err) // min 0: nothing to do
	}
	p.Close()
	if _, err := p.Get(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("after close: %v", err)
	}
}

func TestShrinkToMin(t *testing.T) {
	c := &counter{}
	cfg := c.config(1, 8)
	cfg.IdleTimeout = 20 * time.Millisecond
	p := New(cfg)
	var held []*obj
	for i := 0; i < 6; i++ {
		o, err := p.Get(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, o)
	}
	for _, o := range held {
		p.Put(o)
	}
	waitUntil(t, func() bool { s := p.Stats(); return s.Size == 1 && s.Creating == 0 })
	if s := p.Stats(); s.Shrinks == 0 {
		t.Errorf("stats %+v", s)
	}
	p.Close()
	<-p.Drained()
}

func TestCloseWithObjectsInUse(t *testing.T) {
	c := &counter{}
	p := New(c.config(1, 2))
	if err := p.Warm(context.Background()); err != nil {
		t.Fatal(err)
	}
	o, _ := p.Get(context.Background())
	p.Close()
	select {
	case <-p.Drained():
		t.Fatal("drained while an object is in use")
	default:
	}
	p.Put(o)
	select {
	case <-p.Drained():
	case <-time.After(5 * time.Second):
		t.Fatal("not drained after the last Put")
	}
	waitUntil(t, func() bool { return c.created.Load() == c.closed.Load() })
}

// TestHammer: many goroutines get, use and return objects (some broken)
// under -race; no object is ever used by two at once, nothing leaks, and
// the pool never exceeds Max.
func TestHammer(t *testing.T) {
	c := &counter{delay: 100 * time.Microsecond}
	cfg := c.config(2, 8)
	cfg.Wait = 10 * time.Second
	cfg.IdleTimeout = 5 * time.Millisecond
	p := New(cfg)
	if err := p.Warm(context.Background()); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var maxSize atomic.Int64
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				o, err := p.Get(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				if o.inUse.Add(1) != 1 {
					t.Error("object used by two goroutines")
				}
				if o.closed.Load() != 0 {
					t.Error("got a closed object")
				}
				if s := int64(p.Stats().Size); s > maxSize.Load() {
					maxSize.Store(s)
				}
				o.inUse.Add(-1)
				if (g+i)%50 == 0 {
					p.Discard(o)
				} else {
					p.Put(o)
				}
			}
		}(g)
	}
	wg.Wait()
	if m := maxSize.Load(); m > 8 {
		t.Errorf("size reached %d > max 8", m)
	}
	p.Close()
	select {
	case <-p.Drained():
	case <-time.After(10 * time.Second):
		t.Fatalf("not drained: %+v", p.Stats())
	}
	if c.created.Load() != c.closed.Load() {
		t.Errorf("leak: created %d, closed %d", c.created.Load(), c.closed.Load())
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}
