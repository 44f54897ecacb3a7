package tlsmgr

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestHostSet(t *testing.T) {
	s := newHostSet([]string{"a.example.com", "*.apps.example.com", "", "UPPER.example.com."})
	for name, want := range map[string]bool{
		"a.example.com":          true,
		"upper.example.com":      true,
		"x.apps.example.com":     true,
		"apps.example.com":       false, // a wildcard needs one more label
		"y.x.apps.example.com":   false, // and exactly one
		"b.example.com":          false,
		"":                       false, // the catch-all host routes nothing here
		"127.0.0.1":              false,
		"example.com":            false,
		"a.example.com.evil.com": false,
	} {
		if got := s.match(normalize(name)); got != want {
			t.Errorf("match(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestBucket(t *testing.T) {
	now := time.Unix(0, 0)
	b := newBucket(3, time.Minute, func() time.Time { return now })
	for i := range 3 {
		if !b.take() {
			t.Fatalf("take %d refused within the burst", i)
		}
	}
	if b.take() {
		t.Fatal("take beyond the burst allowed")
	}
	now = now.Add(20 * time.Second) // one token per 20s
	if !b.take() {
		t.Fatal("no token after a refill period")
	}
	if b.take() {
		t.Fatal("two tokens after one refill period")
	}
	now = now.Add(time.Hour)
	for i := range 3 {
		if !b.take() {
			t.Fatalf("take %d refused after a long idle time", i)
		}
	}
	if b.take() {
		t.Fatal("idle time filled the bucket beyond its burst")
	}
}

func newTestManager(t *testing.T, od OnDemandOptions) *Manager {
	t.Helper()
	m, err := New(Options{StoragePath: t.TempDir(), OnDemand: od})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestDecide(t *testing.T) {
	m := newTestManager(t, OnDemandOptions{Enabled: true, Burst: 2, Interval: time.Hour})
	m.Update(View{Managed: []string{"managed.example.com"}, Routed: []string{"a.example.com", "*.w.example.com"}})
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		want error
	}{
		{"managed.example.com", nil}, // no token used
		{"a.example.com", nil},
		{"a.example.com", nil}, // cached: no token used
		{"x.w.example.com", nil},
		{"y.w.example.com", ErrRateLimited}, // bucket empty
		{"evil.example.com", ErrNotServed},
		{"evil.example.com", ErrNotServed}, // cached denial
	} {
		if err := m.decide(ctx, tc.name); !errors.Is(err, tc.want) {
			t.Errorf("decide(%q) = %v, want %v", tc.name, err, tc.want)
		}
	}
	st := m.Stats()
	if st.OnDemandAllowed != 2 || st.RateLimited != 1 || st.OnDemandDenied != 2 {
		t.Errorf("stats %+v, want 2 allowed, 1 rate-limited, 2 denied", st)
	}
	// A new view forgets the decisions: evil is now routed.
	m.Update(View{Routed: []string{"evil.example.com"}})
	m.limiter = newBucket(1, time.Hour, time.Now)
	if err := m.decide(ctx, "evil.example.com"); err != nil {
		t.Errorf("after the route appeared: %v", err)
	}
}

func TestDecideAsk(t *testing.T) {
	var asked atomic.Int32
	ask := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		if r.URL.Query().Get("domain") != "ok.example.com" {
			w.WriteHeader(http.StatusForbidden)
		}
	}))
	defer ask.Close()
	m := newTestManager(t, OnDemandOptions{Enabled: true, Ask: ask.URL + "/check?token=x"})
	m.Update(View{Routed: []string{"routed.example.com"}})
	ctx := context.Background()
	if err := m.decide(ctx, "routed.example.com"); err != nil {
		t.Errorf("routed: %v", err)
	}
	if asked.Load() != 0 {
		t.Error("asked about a routed host")
	}
	if err := m.decide(ctx, "ok.example.com"); err != nil {
		t.Errorf("ask said yes: %v", err)
	}
	if err := m.decide(ctx, "no.example.com"); err == nil {
		t.Error("ask said no, but allowed")
	}
	m.decide(ctx, "no.example.com")
	if n := asked.Load(); n != 2 {
		t.Errorf("asked %d times, want 2 (decisions are cached)", n)
	}
}

// A flood of random names from many goroutines: no more than burst
// allowed, the rest refused, the decision cache bounded.
func TestDecideHammer(t *testing.T) {
	m := newTestManager(t, OnDemandOptions{Enabled: true, Burst: 5, Interval: time.Hour})
	m.Update(View{Routed: []string{"*.flood.example.com"}})
	var allowed atomic.Int32
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				name := fmt.Sprintf("n%d-%d.flood.example.com", g, i)
				if i%2 == 1 {
					name = fmt.Sprintf("n%d-%d.other.example.com", g, i)
				}
				if m.decide(context.Background(), name) == nil {
					allowed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := allowed.Load(); n != 5 {
		t.Fatalf("%d names allowed, want exactly the burst (5)", n)
	}
	st := m.Stats()
	if st.RateLimited != 16*100-5 || st.OnDemandDenied != 16*100 {
		t.Fatalf("stats %+v", st)
	}
}
