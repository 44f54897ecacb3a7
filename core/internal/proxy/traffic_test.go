package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicegw/sluice/core/internal/model"
)

// withTraffic is a snapshot with one route "/" on host "x" to b.
func withTraffic(b *model.Backend, tr *model.Traffic) *model.Snapshot {
	r := prefix("/", b)
	r.Traffic = tr
	return &model.Snapshot{Hosts: []*model.VirtualHost{{Name: "x", Routes: []*model.Route{r}}}}
}

func (g *gateway) post(t *testing.T, path string, body io.Reader, length int64) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, g.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "x"
	req.ContentLength = length // -1: chunked
	return do(t, g.srv.Client(), req)
}

// A body over the limit gets 413, whether its length is declared or it is
// chunked, and the backend never receives a complete request.
func TestBodyLimit(t *testing.T) {
	for _, proto := range []model.Protocol{model.ProtocolHTTP, model.ProtocolGRPC} {
		t.Run(string(proto), func(t *testing.T) { testBodyLimit(t, proto) })
	}
}

func testBodyLimit(t *testing.T, proto model.Protocol) {
	var started, complete atomic.Int32
	be := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started.Add(1)
		n, err := io.Copy(io.Discard, r.Body)
		if err == nil {
			complete.Add(1)
		}
		fmt.Fprintf(w, "%d", n)
	}))
	be.Config.Protocols = new(http.Protocols)
	be.Config.Protocols.SetHTTP1(true)
	be.Config.Protocols.SetUnencryptedHTTP2(true)
	be.Start()
	t.Cleanup(be.Close)
	g := newGateway(t, Options{})
	g.load(t, withTraffic(backend("default/web:80", addr(be)), &model.Traffic{MaxBodyBytes: 10, Protocol: proto}))
	for _, tc := range []struct {
		name   string
		body   string
		length int64
		code   int
	}{
		{"declared at the limit", "0123456789", 10, 200},
		{"chunked at the limit", "0123456789", -1, 200},
		{"empty", "", 0, 200},
		{"declared over", "0123456789a", 11, 413},
		{"chunked over", strings.Repeat("x", 100000), -1, 413},
		{"chunked one over", "0123456789a", -1, 413},
	} {
		started.Store(0)
		complete.Store(0)
		r := g.post(t, "/", io.MultiReader(strings.NewReader(tc.body)), tc.length)
		if r.code != tc.code {
			t.Errorf("%s: got %d %q, want %d", tc.name, r.code, r.body, tc.code)
			continue
		}
		if tc.code == 413 {
			if r.body != "request body too large: the limit is 10 bytes\n" {
				t.Errorf("%s: body %q", tc.name, r.body)
			}
			if complete.Load() != 0 {
				t.Errorf("%s: the backend received a complete request", tc.name)
			}
			if tc.length >= 0 && started.Load() != 0 {
				t.Errorf("%s: a declared oversize body reached the backend", tc.name)
			}
		} else if r.body != fmt.Sprint(len(tc.body)) {
			t.Errorf("%s: backend read %q bytes, want %d", tc.name, r.body, len(tc.body))
		}
	}
}

func TestAllowedSource(t *testing.T) {
	p := func(s ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, x := range s {
			out = append(out, netip.MustParsePrefix(x))
		}
		return out
	}
	a := netip.MustParseAddr
	for _, tc := range []struct {
		client      netip.Addr
		allow, deny []netip.Prefix
		want        bool
	}{
		{a("10.1.2.3"), nil, nil, true},
		{netip.Addr{}, nil, nil, true},
		{netip.Addr{}, p("0.0.0.0/0"), nil, false},
		{a("10.1.2.3"), p("10.0.0.0/8"), nil, true},
		{a("11.1.2.3"), p("10.0.0.0/8"), nil, false},
		{a("10.1.2.3"), p("10.0.0.0/8"), p("10.1.0.0/16"), false}, // deny wins
		{a("10.2.2.3"), p("10.0.0.0/8"), p("10.1.0.0/16"), true},
		{a("10.1.2.3"), nil, p("10.1.2.3/32"), false},
		{a("10.1.2.4"), nil, p("10.1.2.3/32"), true},
		{a("2001:db8::1"), p("10.0.0.0/8", "2001:db8::/32"), nil, true},
		{a("2001:db9::1"), p("10.0.0.0/8", "2001:db8::/32"), nil, false},
	} {
		if got := allowedSource(tc.client, tc.allow, tc.deny); got != tc.want {
			t.Errorf("allowedSource(%v, %v, %v) = %v, want %v", tc.client, tc.allow, tc.deny, got, tc.want)
		}
	}
}

func TestClientAddr(t *testing.T) {
	h := New(Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	for _, tc := range []struct {
		peer string
		xff  []string
		want string
	}{
		{"192.0.2.1:1234", []string{"198.51.100.7"}, "192.0.2.1"}, // untrusted peer: XFF ignored
		{"10.0.0.1:1234", nil, "10.0.0.1"},
		{"10.0.0.1:1234", []string{"198.51.100.7"}, "198.51.100.7"},
		{"10.0.0.1:1234", []string{"203.0.113.9, 198.51.100.7, 10.0.0.2"}, "198.51.100.7"},
		{"10.0.0.1:1234", []string{"203.0.113.9", "198.51.100.7,10.0.0.2"}, "198.51.100.7"},
		{"10.0.0.1:1234", []string{"10.0.0.3, 10.0.0.2"}, "10.0.0.3"},
		{"10.0.0.1:1234", []string{"198.51.100.7, junk"}, "10.0.0.1"},
		{"[::ffff:10.0.0.1]:1234", []string{"2001:db8::7"}, "2001:db8::7"},
		{"not an address", nil, "invalid IP"},
		// A zone never hides an address from its prefix (deny fe80::/10).
		{"[fe80::1%eth0]:1234", nil, "fe80::1"},
		{"10.0.0.1:1234", []string{"2001:db8::7%eth0"}, "2001:db8::7"},
		// Entries with a port or brackets, as some proxies write them,
		// read as the rate limits' client_ip reads them.
		{"10.0.0.1:1234", []string{"198.51.100.7:5678"}, "198.51.100.7"},
		{"10.0.0.1:1234", []string{"[2001:db8::7]:5678, 10.0.0.2:80"}, "2001:db8::7"},
		{"10.0.0.1:1234", []string{"[2001:db8::7]"}, "2001:db8::7"},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = tc.peer
		for _, v := range tc.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := h.clientAddr(r).String(); got != tc.want {
			t.Errorf("peer %s XFF %q: client %s, want %s", tc.peer, tc.xff, got, tc.want)
		}
	}
}

// Source ranges through the proxy: the peer is 127.0.0.1; X-Forwarded-For
// counts only from a trusted proxy.
func TestSourceRange(t *testing.T) {
	be := echoBackend(t, "web")
	for _, tc := range []struct {
		name        string
		trusted     string
		allow, deny string
		xff         string
		want        int
	}{
		{"allowed", "", "127.0.0.1/32", "", "", 200},
		{"not allowed", "", "10.0.0.0/8", "", "", 403},
		{"deny wins", "", "127.0.0.0/8", "127.0.0.1/32", "", 403},
		{"denied elsewhere", "", "", "10.0.0.0/8", "", 200},
		{"forged XFF from an untrusted peer", "", "10.0.0.0/8", "", "10.1.2.3", 403},
		{"XFF from a trusted proxy", "127.0.0.1/32", "10.0.0.0/8", "", "10.1.2.3", 200},
		{"XFF from a trusted proxy, denied", "127.0.0.1/32", "", "10.1.0.0/16", "10.1.2.3", 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts Options
			tr := &model.Traffic{}
			if tc.trusted != "" {
				opts.TrustedProxies = []netip.Prefix{netip.MustParsePrefix(tc.trusted)}
			}
			if tc.allow != "" {
				tr.AllowSources = []netip.Prefix{netip.MustParsePrefix(tc.allow)}
			}
			if tc.deny != "" {
				tr.DenySources = []netip.Prefix{netip.MustParsePrefix(tc.deny)}
			}
			g := newGateway(t, opts)
			g.load(t, withTraffic(backend("default/web:80", addr(be)), tr))
			var hdr []string
			if tc.xff != "" {
				hdr = []string{"X-Forwarded-For", tc.xff}
			}
			r := g.get(t, "x", "/", hdr...)
			if r.code != tc.want {
				t.Fatalf("got %d %q, want %d", r.code, r.body, tc.want)
			}
			if r.code == 403 && r.body != "forbidden: the client address is not allowed on this route\n" {
				t.Fatalf("403 body %q", r.body)
			}
		})
	}
}

// The route's timeouts override the Backend's and fire against a slow
// real backend: read (headers, then between body reads), send (between
// writes of the request body), connect.
func TestTrafficTimeouts(t *testing.T) {
	done := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wait := func(d time.Duration) {
			select {
			case <-time.After(d):
			case <-done:
			case <-r.Context().Done():
			}
		}
		switch r.URL.Path {
		case "/slow-headers":
			wait(300 * time.Millisecond)
			io.WriteString(w, "late")
		case "/pause-body":
			io.WriteString(w, "first ")
			w.(http.Flusher).Flush()
			wait(300 * time.Millisecond)
			io.WriteString(w, "second")
		case "/no-read":
			wait(10 * time.Second) // never reads the body
		default:
			io.WriteString(w, "ok")
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(done) })

	g := newGateway(t, Options{})
	b := backend("default/slow:80", addr(slow))
	b.Timeouts.Response = 50 * time.Millisecond

	t.Run("read timeout replaces the response timeout", func(t *testing.T) {
		g.load(t, withTraffic(b, &model.Traffic{ReadTimeout: time.Second}))
		if r := g.get(t, "x", "/slow-headers"); r.code != 200 || r.body != "late" {
			t.Fatalf("got %d %q, want 200 late", r.code, r.body)
		}
	})
	t.Run("read timeout on headers", func(t *testing.T) {
		g.load(t, withTraffic(b, &model.Traffic{ReadTimeout: 100 * time.Millisecond}))
		if r := g.get(t, "x", "/slow-headers"); r.code != 504 {
			t.Fatalf("got %d %q, want 504", r.code, r.body)
		}
	})
	t.Run("read timeout between body reads", func(t *testing.T) {
		g.load(t, withTraffic(b, &model.Traffic{ReadTimeout: 100 * time.Millisecond}))
		req, _ := http.NewRequest(http.MethodGet, g.srv.URL+"/pause-body", nil)
		req.Host = "x"
		resp, err := g.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err == nil || string(body) != "first " {
			t.Fatalf("got %q, %v; want the body cut after %q", body, err, "first ")
		}
	})
	t.Run("send timeout", func(t *testing.T) {
		g.load(t, withTraffic(b, &model.Traffic{SendTimeout: 200 * time.Millisecond, ReadTimeout: 30 * time.Second}))
		start := time.Now()
		r := g.post(t, "/no-read", &patternReader{left: 1 << 30}, -1) // far more than the socket buffers hold
		if r.code != 504 {
			t.Fatalf("got %d %q, want 504", r.code, r.body)
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Fatalf("the send timeout did not cut the request (took %v)", d)
		}
	})
	t.Run("connect timeout", func(t *testing.T) {
		b := backend("default/slow:80", addr(slow))
		g.load(t, withTraffic(b, &model.Traffic{ConnectTimeout: time.Nanosecond}))
		if r := g.get(t, "x", "/"); r.code != 504 {
			t.Fatalf("got %d %q, want 504", r.code, r.body)
		}
	})
}

// HTTPS, GRPCS and GRPC upstreams, chosen per route over one Backend.
func TestUpstreamProtocols(t *testing.T) {
	tls1 := httptest.NewTLSServer(echoHandler("tls1"))
	t.Cleanup(tls1.Close)
	h2 := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// gRPC-ish: HTTP/2 only, answer in trailers.
		if r.ProtoMajor != 2 {
			http.Error(w, "want HTTP/2", http.StatusHTTPVersionNotSupported)
			return
		}
		w.Header().Set("Trailer", "Grpc-Status")
		w.Header().Set("Content-Type", "application/grpc")
		w.WriteHeader(200)
		w.(http.Flusher).Flush() // streamed, as gRPC is: no Content-Length
		io.Copy(w, r.Body)
		w.Header().Set("Grpc-Status", "0")
	}))
	h2.EnableHTTP2 = true
	h2.StartTLS()
	t.Cleanup(h2.Close)
	h2c := httptest.NewUnstartedServer(echoHandler("h2c"))
	h2c.Config.Protocols = new(http.Protocols)
	h2c.Config.Protocols.SetUnencryptedHTTP2(true)
	h2c.Start()
	t.Cleanup(h2c.Close)
	plain := echoBackend(t, "plain")

	g := newGateway(t, Options{})
	t.Run("https", func(t *testing.T) {
		g.load(t, withTraffic(backend("default/web:443", addr(tls1)), &model.Traffic{Protocol: model.ProtocolHTTPS}))
		r := g.get(t, "x", "/p")
		if r.code != 200 || r.seen.Name != "tls1" || r.seen.Proto != 1 {
			t.Fatalf("got %d %q", r.code, r.body)
		}
	})
	t.Run("grpcs", func(t *testing.T) {
		g.load(t, withTraffic(backend("default/grpc:443", addr(h2)), &model.Traffic{Protocol: model.ProtocolGRPCS}))
		req, _ := http.NewRequest(http.MethodPost, g.srv.URL+"/pkg.Svc/Call", strings.NewReader("message"))
		req.Host = "x"
		resp, err := g.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(body) != "message" || resp.Trailer.Get("Grpc-Status") != "0" {
			t.Fatalf("got %d %q trailer %v", resp.StatusCode, body, resp.Trailer)
		}
	})
	t.Run("grpc is h2c", func(t *testing.T) {
		g.load(t, withTraffic(backend("default/grpc:80", addr(h2c)), &model.Traffic{Protocol: model.ProtocolGRPC}))
		if r := g.get(t, "x", "/p"); r.code != 200 || r.seen.Proto != 2 {
			t.Fatalf("got %d %q", r.code, r.body)
		}
	})
	t.Run("https to a plaintext backend", func(t *testing.T) {
		g.load(t, withTraffic(backend("default/plain:80", addr(plain)), &model.Traffic{Protocol: model.ProtocolHTTPS}))
		if r := g.get(t, "x", "/p"); r.code != 502 {
			t.Fatalf("got %d %q, want 502", r.code, r.body)
		}
	})
	t.Run("plain http to a TLS backend", func(t *testing.T) {
		g.load(t, withTraffic(backend("default/web:443", addr(tls1)), nil))
		if r := g.get(t, "x", "/p"); r.code != 400 { // Go's TLS server answers plain HTTP with 400
			t.Fatalf("got %d %q, want the TLS server's 400", r.code, r.body)
		}
	})
}

// limit-connections: the requests in flight per client on a route.
func TestMaxConnsPerClient(t *testing.T) {
	release := make(chan struct{})
	var inBackend atomic.Int32
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inBackend.Add(1)
		if r.URL.Path == "/hold" {
			<-release
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(be.Close)
	g := newGateway(t, Options{})
	g.load(t, withTraffic(backend("default/web:80", addr(be)), &model.Traffic{MaxConnsPerClient: 2}))

	var wg sync.WaitGroup
	codes := make(chan int, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodGet, g.srv.URL+"/hold", nil)
			req.Host = "x"
			resp, err := g.srv.Client().Do(req)
			if err != nil {
				codes <- 0
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	for inBackend.Load() < 2 {
		time.Sleep(5 * time.Millisecond)
	}
	// A new route table (new *model.Route values) keeps the counts: they
	// belong to the Ingress.
	g.load(t, withTraffic(backend("default/web:80", addr(be)), &model.Traffic{MaxConnsPerClient: 2}))
	if r := g.get(t, "x", "/"); r.code != 503 || r.body != "too many requests in flight from this client (limit 2)\n" {
		t.Fatalf("third request: %d %q, want 503", r.code, r.body)
	}
	close(release)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Fatalf("held request: %d", c)
		}
	}
	if r := g.get(t, "x", "/"); r.code != 200 {
		t.Fatalf("after release: %d %q", r.code, r.body)
	}
	g.h.inflight.mu.Lock()
	left := len(g.h.inflight.n)
	g.h.inflight.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d counters left after every request ended", left)
	}
}

// Hammer: many goroutines on a few keys never exceed the limit, and every
// counter is gone at the end.
func TestInflightHammer(t *testing.T) {
	var c inflight
	const max = 3
	routes := []model.ObjectRef{{Kind: "Ingress", Namespace: "a", Name: "x"}, {Kind: "Ingress", Namespace: "b", Name: "x"}}
	clients := []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")}
	var cur [2][2]atomic.Int32
	var admitted, over atomic.Int64
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				ri, ci := (g+i)%2, (g/2+i)%2
				k := connKey{routes[ri], clients[ci]}
				if !c.acquire(k, max) {
					continue
				}
				admitted.Add(1)
				if cur[ri][ci].Add(1) > max {
					over.Add(1)
				}
				cur[ri][ci].Add(-1)
				c.release(k)
			}
		}()
	}
	wg.Wait()
	if over.Load() != 0 {
		t.Fatalf("%d times over the limit", over.Load())
	}
	if admitted.Load() == 0 || len(c.n) != 0 {
		t.Fatalf("admitted %d, %d counters left", admitted.Load(), len(c.n))
	}
}

// A WebSocket upgrade works on a route with read and send timeouts: the
// upgraded connection is handed to ReverseProxy unwrapped.
func TestTrafficTimeoutsWebSocket(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		io.Copy(conn, brw)
	}))
	t.Cleanup(be.Close)
	g := newGateway(t, Options{})
	g.load(t, withTraffic(backend("default/ws:80", addr(be)), &model.Traffic{ReadTimeout: time.Minute, SendTimeout: time.Minute}))
	conn, err := net.Dial("tcp", g.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second)) // deadlock guard only
	fmt.Fprintf(conn, "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 {
		t.Fatalf("upgrade: %d", resp.StatusCode)
	}
	io.WriteString(conn, "hello")
	buf := make([]byte, 5)
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("echo: got %q, %v", buf, err)
	}
}

// A limit near the int64 maximum does not overflow.
func TestLimitedBodyHugeLimit(t *testing.T) {
	b := &limitedBody{rc: io.NopCloser(strings.NewReader("hello")), left: 1<<63 - 1}
	got, err := io.ReadAll(b)
	if err != nil || string(got) != "hello" {
		t.Fatalf("got %q, %v", got, err)
	}
}

// FuzzClientAddr: whatever the peer and X-Forwarded-For, clientAddr does
// not panic, returns an unmapped address without zone (or none), and
// believes nothing an untrusted peer sends.
func FuzzClientAddr(f *testing.F) {
	f.Add("10.0.0.1:1234", "198.51.100.7, [2001:db8::7]:80, 10.0.0.2")
	f.Add("[fe80::1%eth0]:1", "::ffff:1.2.3.4%x")
	f.Add("192.0.2.1:1", "10.0.0.9")
	h := New(Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	f.Fuzz(func(t *testing.T, peer, xff string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = peer
		r.Header.Set("X-Forwarded-For", xff)
		a := h.clientAddr(r)
		if a.IsValid() && (a.Zone() != "" || a.Is4In6()) {
			t.Fatalf("peer %q XFF %q: client %v has a zone or is mapped", peer, xff, a)
		}
		if p, err := netip.ParseAddrPort(peer); err == nil && !h.trusted(p.Addr().Unmap().WithZone("")) {
			if want := p.Addr().Unmap().WithZone(""); a != want {
				t.Fatalf("untrusted peer %q XFF %q: client %v, want the peer", peer, xff, a)
			}
		}
	})
}
