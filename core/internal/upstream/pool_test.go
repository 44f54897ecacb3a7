package upstream

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicegw/sluice/core/internal/model"
)

// fakeClock is a settable clock for passive health tests.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func newTestPool(t *testing.T, policy model.Balancer, addrs ...string) (*Set, *Pool, *fakeClock) {
	t.Helper()
	clk := &fakeClock{}
	clk.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	s := NewSet(Options{EjectBase: 10 * time.Second, EjectMax: 35 * time.Second, Now: clk.now})
	snap := &model.Snapshot{DefaultBackend: &model.Backend{Name: "ns/svc:80", Balancer: policy, Endpoints: addrs}}
	p := s.Sync(snap)["ns/svc:80"]
	if p == nil {
		t.Fatal("Sync returned no pool")
	}
	return s, p, clk
}

func pickAddr(p *Pool, avoid *Endpoint) string {
	e := p.Pick(avoid)
	if e == nil {
		return "<nil>"
	}
	e.Done()
	return e.Addr()
}

func TestRoundRobinDistribution(t *testing.T) {
	_, p, _ := newTestPool(t, model.BalancerRoundRobin, "a:1", "b:1", "c:1")
	counts := map[string]int{}
	for range 300 {
		counts[pickAddr(p, nil)]++
	}
	for _, a := range []string{"a:1", "b:1", "c:1"} {
		if counts[a] != 100 {
			t.Errorf("round robin: %s picked %d times of 300, want 100 (%v)", a, counts[a], counts)
		}
	}
}

func TestLeastRequestDistribution(t *testing.T) {
	_, p, _ := newTestPool(t, model.BalancerLeastRequest, "a:1", "b:1", "c:1", "d:1")
	counts := map[string]int{}
	const n = 20000
	for range n {
		counts[pickAddr(p, nil)]++
	}
	// With no load every endpoint is equally likely; 20% to 30% each is
	// many standard deviations wide.
	for _, a := range []string{"a:1", "b:1", "c:1", "d:1"} {
		if c := counts[a]; c < n*20/100 || c > n*30/100 {
			t.Errorf("least request idle: %s picked %d of %d (%v)", a, c, n, counts)
		}
	}
}

func TestLeastRequestAvoidsLoaded(t *testing.T) {
	_, p, _ := newTestPool(t, model.BalancerLeastRequest, "a:1", "b:1", "c:1")
	// Load a:1 with 50 in-flight requests: two distinct candidates always
	// include a less loaded one, so a:1 must never be picked.
	var busy *Endpoint
	for busy == nil || busy.Addr() != "a:1" {
		e := p.Pick(nil)
		if e.Addr() == "a:1" {
			busy = e
		} else {
			e.Done()
		}
	}
	for range 49 {
		busy.inflight.Add(1)
	}
	for range 1000 {
		e := p.Pick(nil)
		if e.Addr() == "a:1" {
			t.Fatal("picked the loaded endpoint")
		}
		e.Done()
	}
	if got := busy.InFlight(); got != 50 {
		t.Fatalf("in flight %d, want 50", got)
	}
}

func TestPickAvoid(t *testing.T) {
	for _, policy := range []model.Balancer{model.BalancerRoundRobin, model.BalancerLeastRequest} {
		t.Run(string(policy), func(t *testing.T) {
			_, p, _ := newTestPool(t, policy, "a:1", "b:1", "c:1")
			avoid := p.Pick(nil)
			avoid.Done()
			for range 300 {
				if e := p.Pick(avoid); e == avoid {
					t.Fatal("picked the avoided endpoint")
				} else {
					e.Done()
				}
			}
			_, one, _ := newTestPool(t, policy, "a:1")
			only := one.Pick(nil)
			if e := one.Pick(only); e != only {
				t.Fatal("single endpoint: avoid must not leave the pool empty")
			}
			_, two, _ := newTestPool(t, policy, "a:1", "b:1")
			a := two.Pick(nil)
			for range 50 {
				if e := two.Pick(a); e == a {
					t.Fatal("two endpoints: picked the avoided one")
				}
			}
		})
	}
}

func TestPickEmpty(t *testing.T) {
	_, p, _ := newTestPool(t, model.BalancerLeastRequest)
	if e := p.Pick(nil); e != nil {
		t.Fatalf("empty pool picked %v", e.Addr())
	}
}

func TestPassiveHealth(t *testing.T) {
	for _, policy := range []model.Balancer{model.BalancerRoundRobin, model.BalancerLeastRequest} {
		t.Run(string(policy), func(t *testing.T) {
			_, p, clk := newTestPool(t, policy, "a:1", "b:1", "c:1")
			var dead *Endpoint
			for dead == nil {
				if e := p.Pick(nil); e.Addr() == "b:1" {
					dead = e
				} else {
					e.Done()
				}
			}
			dead.Done()
			never := func(d time.Duration) {
				t.Helper()
				for range 200 {
					if pickAddr(p, nil) == "b:1" {
						t.Fatalf("ejected endpoint picked %v after ejection", d)
					}
				}
			}
			sometimes := func() {
				t.Helper()
				for range 200 {
					if pickAddr(p, nil) == "b:1" {
						return
					}
				}
				t.Fatal("endpoint never picked after its ejection ended")
			}

			p.Failed(dead)
			never(0)
			clk.advance(9 * time.Second)
			never(9 * time.Second)
			clk.advance(time.Second)
			sometimes()

			// The second consecutive failure doubles the ejection.
			p.Failed(dead)
			p.Failed(dead) // while ejected: does not extend
			clk.advance(19 * time.Second)
			never(19 * time.Second)
			clk.advance(time.Second)
			sometimes()

			// Third: 40s capped at 35s.
			p.Failed(dead)
			clk.advance(34 * time.Second)
			never(34 * time.Second)
			clk.advance(time.Second)
			sometimes()

			// A success resets the streak: back to 10s.
			p.Succeeded(dead)
			p.Failed(dead)
			clk.advance(10 * time.Second)
			sometimes()

			st := p.Stats()
			if len(st) != 3 || st[1].Addr != "b:1" || st[1].Failures != 5 || st[1].InFlight != 0 {
				t.Fatalf("stats: %+v", st)
			}
		})
	}
}

func TestPanicMode(t *testing.T) {
	for _, policy := range []model.Balancer{model.BalancerRoundRobin, model.BalancerLeastRequest} {
		t.Run(string(policy), func(t *testing.T) {
			_, p, _ := newTestPool(t, policy, "a:1", "b:1", "c:1")
			for _, e := range p.eps.Load().list {
				p.Failed(e)
			}
			seen := map[string]bool{}
			for range 300 {
				seen[pickAddr(p, nil)] = true
			}
			if seen["<nil>"] || len(seen) == 0 {
				t.Fatalf("all ejected: picks %v, want endpoints anyway", seen)
			}
			if policy == model.BalancerRoundRobin && len(seen) != 3 {
				t.Fatalf("panic mode round robin should spread over all endpoints, got %v", seen)
			}
		})
	}
}

func TestSyncKeepsStateAndDropsRemoved(t *testing.T) {
	s, p, _ := newTestPool(t, model.BalancerRoundRobin, "a:1", "b:1")
	a := p.Pick(nil) // a:1, still in flight across the reload
	p.Failed(p.eps.Load().list[1])

	snap := &model.Snapshot{
		DefaultBackend: &model.Backend{Name: "ns/svc:80", Balancer: model.BalancerLeastRequest, Endpoints: []string{"b:1", "a:1", "c:1", "a:1"}},
		Hosts: []*model.VirtualHost{{Name: "h", Routes: []*model.Route{
			{PathType: model.PathPrefix, Path: "/", Backend: &model.Backend{Name: "ns/other:http", Endpoints: []string{"d:1"}}},
		}}},
	}
	pools := s.Sync(snap)
	if pools["ns/svc:80"] != p || len(pools) != 2 || pools["ns/other:http"] == nil {
		t.Fatalf("Sync did not reuse the pool or create the new one: %v", pools)
	}
	if *p.policy.Load() != model.BalancerLeastRequest {
		t.Fatal("balancer not updated")
	}
	st := p.Stats()
	if len(st) != 3 || st[0].Addr != "b:1" || st[0].EjectedUntil.IsZero() || st[1].Addr != "a:1" || st[1].InFlight != 1 || st[2].Addr != "c:1" {
		t.Fatalf("state not kept across Sync: %+v", st)
	}
	a.Done()

	if !s.SetEndpoints("ns/svc:80", []string{"c:1"}) || p.Len() != 1 {
		t.Fatal("SetEndpoints did not update in place")
	}
	if s.SetEndpoints("ns/missing:80", nil) {
		t.Fatal("SetEndpoints on a missing backend reported true")
	}

	pools = s.Sync(&model.Snapshot{})
	if len(pools) != 0 || s.Get("ns/svc:80") != nil {
		t.Fatal("removed backends not dropped")
	}
	if s.Sync(nil) == nil {
		t.Fatal("Sync(nil) returned nil map")
	}
}

// TestHammer picks, releases, fails and updates endpoints from many
// goroutines; run with -race. It checks that in-flight counters return to
// zero and that every pick came from an address the pool had at some point.
func TestHammer(t *testing.T) {
	for _, policy := range []model.Balancer{model.BalancerRoundRobin, model.BalancerLeastRequest} {
		t.Run(string(policy), func(t *testing.T) {
			s := NewSet(Options{EjectBase: time.Millisecond, EjectMax: 4 * time.Millisecond})
			name := "ns/svc:80"
			all := []string{"a:1", "b:1", "c:1", "d:1", "e:1"}
			s.Sync(&model.Snapshot{DefaultBackend: &model.Backend{Name: name, Balancer: policy, Endpoints: all}})
			p := s.Get(name)
			valid := map[string]bool{}
			for _, a := range all {
				valid[a] = true
			}

			var (
				wg      sync.WaitGroup
				stop    atomic.Bool
				mu      sync.Mutex
				touched = map[*Endpoint]bool{}
			)
			for g := range 16 {
				wg.Go(func() {
					mine := map[*Endpoint]bool{}
					for i := 0; i < 3000; i++ {
						e := p.Pick(nil)
						if e == nil {
							continue
						}
						if !valid[e.Addr()] {
							panic(fmt.Sprintf("picked unknown address %q", e.Addr()))
						}
						mine[e] = true
						switch (i + g) % 7 {
						case 0:
							p.Failed(e)
							if r := p.Pick(e); r != nil {
								mine[r] = true
								r.Done()
							}
						case 1:
							p.Succeeded(e)
						}
						e.Done()
					}
					mu.Lock()
					for e := range mine {
						touched[e] = true
					}
					mu.Unlock()
				})
			}
			var updater sync.WaitGroup
			updater.Go(func() {
				for i := 0; !stop.Load(); i++ {
					s.SetEndpoints(name, all[i%3:i%3+3])
					_ = p.Stats()
				}
			})
			wg.Wait()
			stop.Store(true)
			updater.Wait()
			for e := range touched {
				if n := e.InFlight(); n != 0 {
					t.Errorf("%s: in flight %d after all Done, want 0", e.Addr(), n)
				}
			}
			if len(touched) < 3 {
				t.Errorf("only %d endpoints ever picked", len(touched))
			}
		})
	}
}

func TestConcurrentFailuresEjectOnce(t *testing.T) {
	_, p, clk := newTestPool(t, model.BalancerRoundRobin, "a:1", "b:1")
	e := p.eps.Load().list[0]
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() { p.Failed(e) })
	}
	wg.Wait()
	if got := e.streak.Load(); got != 1 {
		t.Fatalf("50 concurrent failures of a healthy endpoint: streak %d, want 1", got)
	}
	clk.advance(10 * time.Second)
	if !e.usable(&clock{now: clk.now}) {
		t.Fatal("ejection longer than EjectBase after one burst of failures")
	}
	if st := p.Stats(); st[0].Failures != 50 {
		t.Fatalf("failures %d, want 50", st[0].Failures)
	}
}
