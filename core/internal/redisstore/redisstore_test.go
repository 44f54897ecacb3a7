package redisstore

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicegw/sluice/wasm"
)

// redisServer is a real redis-server on 127.0.0.1, stopped by the test.
type redisServer struct {
	addr string
	cmd  *exec.Cmd
	done chan struct{}
}

// startRedis starts redis-server on a free loopback port (the same one
// again when port is not 0).
func startRedis(t testing.TB, port int) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server is not installed: run scripts/deps.sh (Debian package redis-server)")
	}
	if port == 0 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &redisServer{addr: "127.0.0.1:" + strconv.Itoa(port), cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(r.done) }()
	t.Cleanup(r.stop)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", r.addr)
		if err == nil {
			c.Close()
			return r
		}
		select {
		case <-r.done:
			t.Fatalf("redis-server exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server did not listen on %s: %s", r.addr, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *redisServer) stop() {
	select {
	case <-r.done:
	default:
		r.cmd.Process.Kill()
		<-r.done
	}
}

func (r *redisServer) port() int {
	_, p, _ := net.SplitHostPort(r.addr)
	n, _ := strconv.Atoi(p)
	return n
}

func newStore(t testing.TB, addr string, log *bytes.Buffer) *Store {
	t.Helper()
	opts := Options{Addr: addr, Backoff: 50 * time.Millisecond, LogInterval: time.Hour}
	if log != nil {
		opts.Logger = slog.New(slog.NewTextHandler(&syncWriter{w: log}, nil))
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

func TestTakeAndAdd(t *testing.T) {
	r := startRedis(t, 0)
	s := newStore(t, r.addr, nil)
	ctx := context.Background()
	l := wasm.Limit{Rate: 1, Period: time.Minute, Burst: 2}
	for i, want := range []wasm.Decision{{Allowed: true, Remaining: 1}, {Allowed: true, Remaining: 0}, {Allowed: false}} {
		d, err := s.Take(ctx, "k", l)
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed != want.Allowed || d.Remaining != want.Remaining {
			t.Fatalf("take %d: %+v, want %+v", i, d, want)
		}
		if !d.Allowed && (d.RetryAfter < 59*time.Second || d.RetryAfter > time.Minute) {
			t.Errorf("take %d: RetryAfter %s, want about 1m", i, d.RetryAfter)
		}
	}
	if d, _ := s.Take(ctx, "other", l); !d.Allowed {
		t.Error("another key shares the bucket")
	}
	if d, _ := s.Take(ctx, "k", wasm.Limit{Rate: 5, Period: time.Minute, Burst: 5}); !d.Allowed {
		t.Error("a changed limit keeps the old bucket")
	}
	if _, err := s.Take(ctx, "k", wasm.Limit{}); err == nil {
		t.Error("a zero limit was accepted")
	}
	for i, want := range []int64{3, 5, -1} {
		n, err := s.Add(ctx, "c", []int64{3, 2, -6}[i])
		if err != nil || n != want {
			t.Fatalf("add %d: %d, %v, want %d", i, n, err, want)
		}
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestRefill: tokens come back at the limit's rate (Redis's clock).
func TestRefill(t *testing.T) {
	r := startRedis(t, 0)
	s := newStore(t, r.addr, nil)
	l := wasm.Limit{Rate: 1, Period: 200 * time.Millisecond, Burst: 1}
	ctx := context.Background()
	if d, _ := s.Take(ctx, "k", l); !d.Allowed {
		t.Fatal("first take refused")
	}
	d, _ := s.Take(ctx, "k", l)
	if d.Allowed || d.RetryAfter <= 0 || d.RetryAfter > 200*time.Millisecond {
		t.Fatalf("second take: %+v", d)
	}
	time.Sleep(d.RetryAfter + 20*time.Millisecond)
	if d, _ := s.Take(ctx, "k", l); !d.Allowed {
		t.Fatalf("after RetryAfter: %+v", d)
	}
}

// TestHammerReplicas: two Stores (two replicas) and many goroutines take
// from one bucket: exactly Burst takes are allowed in all.
func TestHammerReplicas(t *testing.T) {
	r := startRedis(t, 0)
	stores := []*Store{newStore(t, r.addr, nil), newStore(t, r.addr, nil)}
	l := wasm.Limit{Rate: 1, Period: time.Hour, Burst: 100}
	var allowed, denied atomic.Int64
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				d, err := stores[g%2].Take(context.Background(), "shared", l)
				if err != nil {
					t.Error(err)
					return
				}
				if d.Allowed {
					allowed.Add(1)
				} else {
					denied.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if allowed.Load() != 100 || denied.Load() != 300 {
		t.Fatalf("allowed %d denied %d, want 100 and 300", allowed.Load(), denied.Load())
	}
}

// TestOutage: with Redis gone, calls fail fast with ErrUnavailable and the
// outage is logged once; when Redis is back, calls work again and the
// recovery is logged once.
func TestOutage(t *testing.T) {
	r := startRedis(t, 0)
	var log bytes.Buffer
	s := newStore(t, r.addr, &log)
	ctx := context.Background()
	l := wasm.Limit{Rate: 10, Period: time.Second, Burst: 10}
	if _, err := s.Take(ctx, "k", l); err != nil {
		t.Fatal(err)
	}
	r.stop()
	for i := range 50 {
		start := time.Now()
		_, err := s.Take(ctx, "k", l)
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("take %d with Redis down: %v, want ErrUnavailable", i, err)
		}
		if _, err := s.Add(ctx, "c", 1); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("add %d with Redis down: %v", i, err)
		}
		if el := time.Since(start); el > 2*time.Second {
			t.Fatalf("take %d took %s with Redis down", i, el)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if n := strings.Count(log.String(), "rate-limit store unavailable"); n != 1 {
		t.Fatalf("%d outage lines, want 1 per interval:\n%s", n, log.String())
	}
	startRedis(t, r.port())
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := s.Take(ctx, "k", l); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the store did not recover after Redis came back")
		}
		time.Sleep(60 * time.Millisecond)
	}
	if n := strings.Count(log.String(), "available again"); n != 1 {
		t.Fatalf("%d recovery lines, want 1:\n%s", n, log.String())
	}
}

func TestNew(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Fatal("New without an address succeeded")
	}
	s, err := New(Options{Addr: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // never used: nothing to close but the pool
		t.Fatal(err)
	}
}

// BenchmarkTake: one bucket take through Redis on loopback.
func BenchmarkTake(b *testing.B) {
	r := startRedis(b, 0)
	s := newStore(b, r.addr, nil)
	l := wasm.Limit{Rate: 1 << 30, Period: time.Second, Burst: 1 << 30}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Take(context.Background(), "bench", l); err != nil {
			b.Fatal(err)
		}
	}
}
