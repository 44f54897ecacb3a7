package proxy

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicegw/sluice/core/internal/config"
	"github.com/sluicegw/sluice/core/internal/model"
)

var hexID = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestRequestID(t *testing.T) {
	be := echoBackend(t, "web")
	snap := &model.Snapshot{DefaultBackend: backend("default/web:80", addr(be))}
	untrusted := newGateway(t, Options{})
	untrusted.load(t, snap)
	trusted := newGateway(t, Options{RequestIDTrusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	trusted.load(t, snap)
	elsewhere := newGateway(t, Options{RequestIDTrusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	elsewhere.load(t, snap)

	for _, tc := range []struct {
		name string
		g    *gateway
		sent []string // X-Request-Id values the client sends
		keep bool
	}{
		{"none sent: generated", untrusted, nil, false},
		{"untrusted peer: replaced", untrusted, []string{"client-chosen"}, false},
		{"peer outside the trusted range: replaced", elsewhere, []string{"client-chosen"}, false},
		{"trusted peer: kept", trusted, []string{"abc-123.proxy"}, true},
		{"trusted peer, two values: replaced", trusted, []string{"a", "b"}, false},
		{"trusted peer, non-ASCII byte: replaced", trusted, []string{"caf\xe9"}, false},
		{"trusted peer, space: replaced", trusted, []string{"a b"}, false},
		{"trusted peer, too long: replaced", trusted, []string{strings.Repeat("x", 129)}, false},
		{"trusted peer, 128 bytes: kept", trusted, []string{strings.Repeat("x", 128)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			for _, v := range tc.sent {
				hdr = append(hdr, "X-Request-Id", v)
			}
			r := tc.g.get(t, "x", "/", hdr...)
			got := r.seen.Header.Values("X-Request-Id")
			if len(got) != 1 {
				t.Fatalf("upstream got X-Request-Id %q, want one value", got)
			}
			if tc.keep {
				if got[0] != tc.sent[0] {
					t.Errorf("upstream got %q, want the trusted %q", got[0], tc.sent[0])
				}
			} else if !hexID.MatchString(got[0]) {
				t.Errorf("upstream got %q, want a new id of 32 hex digits", got[0])
			}
		})
	}
	// Ids differ.
	seen := map[string]bool{}
	for range 50 {
		id := untrusted.get(t, "x", "/").seen.Header.Get("X-Request-Id")
		if seen[id] {
			t.Fatalf("id %s generated twice", id)
		}
		seen[id] = true
	}
}

// TestTraceContextPassThrough: W3C traceparent and tracestate reach the
// backend byte for byte, also odd but legal ones, and several tracestate
// lines stay several lines.
func TestTraceContextPassThrough(t *testing.T) {
	be := echoBackend(t, "web")
	g := newGateway(t, Options{AccessLog: true, Logger: slog.New(slog.DiscardHandler)})
	g.load(t, &model.Snapshot{DefaultBackend: backend("default/web:80", addr(be))})
	for _, tc := range []struct {
		traceparent string
		tracestate  []string
	}{
		{"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", []string{"congo=t61rcWkgMzE"}},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", []string{"rojo=00f067aa0ba902b7", "congo=t61rcWkgMzE,vendor@tenant=x"}},
		{"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-future", nil}, // a future version: passed as is
	} {
		hdr := []string{"Traceparent", tc.traceparent}
		for _, s := range tc.tracestate {
			hdr = append(hdr, "Tracestate", s)
		}
		r := g.get(t, "x", "/", hdr...)
		if got := r.seen.Header.Values("Traceparent"); !slices.Equal(got, []string{tc.traceparent}) {
			t.Errorf("traceparent upstream %q, want %q", got, tc.traceparent)
		}
		if got := r.seen.Header.Values("Tracestate"); !slices.Equal(got, tc.tracestate) {
			t.Errorf("tracestate upstream %q, want %q", got, tc.tracestate)
		}
	}
}

func TestAccessFields(t *testing.T) {
	if !slices.Equal(accessFieldNames[:], config.AccessFields) {
		t.Errorf("the proxy's access fields %q differ from config.AccessFields %q", accessFieldNames, config.AccessFields)
	}
	if !slices.Equal(defaultAccessFields, config.DefaultAccessFields) {
		t.Errorf("the proxy's default fields %q differ from config.DefaultAccessFields %q", defaultAccessFields, config.DefaultAccessFields)
	}
	be := echoBackend(t, "web")
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(&lockedWriter{w: &buf, mu: &mu}, nil))
	g := newGateway(t, Options{Logger: slog.New(slog.DiscardHandler), AccessLogger: logger, AccessLog: true,
		AccessFields: []string{"status", "request_id", "traceparent", "user_agent", "upstream_duration", "proto"}})
	g.load(t, &model.Snapshot{DefaultBackend: backend("default/web:80", addr(be))})
	r := g.get(t, "x", "/", "Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "User-Agent", "probe/1")
	mu.Lock()
	line := strings.TrimSpace(buf.String())
	mu.Unlock()
	var e map[string]any
	if err := json.Unmarshal([]byte(line), &e); err != nil {
		t.Fatalf("%v: %q", err, line)
	}
	var keys []string
	for k := range e {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"level", "msg", "proto", "request_id", "status", "time", "traceparent", "upstream_duration", "user_agent"}; !slices.Equal(keys, want) {
		t.Errorf("fields %q, want %q", keys, want)
	}
	if e["request_id"] != r.seen.Header.Get("X-Request-Id") {
		t.Errorf("logged request_id %v, upstream got %q", e["request_id"], r.seen.Header.Get("X-Request-Id"))
	}
	if e["traceparent"] != "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" || e["user_agent"] != "probe/1" || e["proto"] != "HTTP/1.1" {
		t.Errorf("line %s", line)
	}
	if d, _ := e["upstream_duration"].(float64); d <= 0 {
		t.Errorf("upstream_duration %v, want > 0", e["upstream_duration"])
	}
	// The fields appear in the configured order.
	if i, j := strings.Index(line, `"status"`), strings.Index(line, `"request_id"`); i > j {
		t.Errorf("status should come before request_id: %s", line)
	}
}

// recordingObserver keeps every Exchange.
type recordingObserver struct {
	mu sync.Mutex
	ex []Exchange
}

func (o *recordingObserver) ObserveRequest(e Exchange) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ex = append(o.ex, e)
}

func (o *recordingObserver) take() []Exchange {
	o.mu.Lock()
	defer o.mu.Unlock()
	ex := o.ex
	o.ex = nil
	return ex
}

var _ Observer = (*recordingObserver)(nil)

func TestObserver(t *testing.T) {
	be := echoBackend(t, "web")
	obs := &recordingObserver{}
	g := newGateway(t, Options{Observer: obs}) // no access log: the Observer alone
	web := backend("default/web:80", addr(be))
	down := backend("default/down:80", refusedAddr(t))
	empty := backend("default/empty:80")
	api := prefix("/api", web)
	g.load(t, &model.Snapshot{Hosts: []*model.VirtualHost{{Name: "foo.com", Routes: []*model.Route{
		prefix("/down", down), prefix("/empty", empty), api,
	}}}})
	g.get(t, "foo.com", "/api/x")
	g.get(t, "foo.com", "/down")
	g.get(t, "foo.com", "/empty")
	g.get(t, "bar.com", "/")
	ex := obs.take()
	if len(ex) != 4 {
		t.Fatalf("%d exchanges, want 4", len(ex))
	}
	if e := ex[0]; e.Route != api || e.Host != "foo.com" || e.Backend != web || e.Method != "GET" || e.Status != 200 || e.Upstream <= 0 || e.UpstreamError != "" || e.Duration < e.Upstream {
		t.Errorf("ok request: %+v", e)
	}
	if e := ex[1]; e.Status != 502 || e.UpstreamError != UpstreamUnreachable || e.Upstream != 0 {
		t.Errorf("refused upstream: %+v", e)
	}
	if e := ex[2]; e.Status != 503 || e.UpstreamError != UpstreamNoEndpoints {
		t.Errorf("no endpoints: %+v", e)
	}
	if e := ex[3]; e.Route != nil || e.Backend != nil || e.Status != 404 {
		t.Errorf("no route: %+v", e)
	}

	// A response timeout is a timeout.
	slowSrv := newGateway(t, Options{Observer: obs})
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	slow := echoBackend(t, "slow")
	slow.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	b := backend("default/slow:80", addr(slow))
	b.Timeouts.Response = 50 * time.Millisecond
	slowSrv.load(t, &model.Snapshot{DefaultBackend: b})
	slowSrv.get(t, "x", "/")
	if ex := obs.take(); len(ex) != 1 || ex[0].Status != 504 || ex[0].UpstreamError != UpstreamTimeout || ex[0].Route != nil || ex[0].Backend != b {
		t.Errorf("timeout: %+v", ex)
	}
}

func BenchmarkRequestID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = newRequestID()
	}
}

// countingObserver is the cheapest real Observer: one atomic add.
type countingObserver struct{ n atomic.Int64 }

func (o *countingObserver) ObserveRequest(Exchange) { o.n.Add(1) }

// BenchmarkProxyObserved is BenchmarkProxy's "proxy" case with an Observer
// (what the gateway always has): the recorder, the timings and the call.
// The metrics' own cost is core/internal/metrics.BenchmarkObserveRequest.
func BenchmarkProxyObserved(b *testing.B) {
	body := []byte("hello, world\n")
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	}))
	defer be.Close()
	obs := &countingObserver{}
	srv := benchProxy(b, Options{Observer: obs}, prefix("/", backend("default/bench:80", addr(be))))
	benchGets(b, srv.URL, body)
	if obs.n.Load() == 0 {
		b.Fatal("the Observer saw no request")
	}
}

// FuzzRequestID: whatever a trusted peer sends, the request leaves with
// exactly one id: the one sent when it is 1..128 visible ASCII characters,
// else a new one.
func FuzzRequestID(f *testing.F) {
	for _, s := range []string{"", "abc", "a b", "caf\xe9", strings.Repeat("x", 129), "0af7651916cd43dd8448eb211c80319c", "\x00", "~!@#"} {
		f.Add(s)
	}
	h := New(Options{RequestIDTrusted: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}})
	f.Fuzz(func(t *testing.T, v string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = "192.0.2.7:4000"
		r.Header["X-Request-Id"] = []string{v}
		id := h.requestID(r)
		if got := r.Header.Values("X-Request-Id"); len(got) != 1 || got[0] != id {
			t.Fatalf("header %q, id %q", got, id)
		}
		keep := len(v) >= 1 && len(v) <= 128 && !strings.ContainsFunc(v, func(c rune) bool { return c <= ' ' || c > '~' })
		if keep && id != v || !keep && !hexID.MatchString(id) {
			t.Fatalf("sent %q, got id %q", v, id)
		}
	})
}
