package proxy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
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
	"github.com/sluicegw/sluice/core/internal/route"
	"github.com/sluicegw/sluice/core/internal/upstream"
)

// echoBackend answers with its name and what it received, as JSON.
type seen struct {
	Name     string
	Proto    int
	Method   string
	Host     string
	Path     string
	RawPath  string
	Query    string
	Header   http.Header
	BodySize int
}

func echoBackend(t *testing.T, name string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(echoHandler(name))
	t.Cleanup(srv.Close)
	return srv
}

func echoHandler(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(seen{
			Name: name, Proto: r.ProtoMajor, Method: r.Method, Host: r.Host,
			Path: r.URL.Path, RawPath: r.URL.RawPath, Query: r.URL.RawQuery,
			Header: r.Header, BodySize: int(n),
		})
	}
}

func addr(srv *httptest.Server) string { return srv.Listener.Addr().String() }

func backend(name string, eps ...string) *model.Backend {
	ns, rest, _ := strings.Cut(name, "/")
	svc, _, _ := strings.Cut(rest, ":")
	return &model.Backend{
		Name:      name,
		Service:   model.ObjectRef{Kind: "Service", Namespace: ns, Name: svc},
		Protocol:  model.ProtocolHTTP,
		Balancer:  model.BalancerRoundRobin,
		Endpoints: eps,
	}
}

func prefix(path string, b *model.Backend) *model.Route {
	return &model.Route{PathType: model.PathPrefix, Path: path, Backend: b,
		Source: model.ObjectRef{Kind: "Ingress", Namespace: "default", Name: "web"}}
}

// gateway is a Handler served on 127.0.0.1 with its pools.
type gateway struct {
	h     *Handler
	pools *upstream.Set
	srv   *httptest.Server
}

func newGateway(t *testing.T, opts Options) *gateway {
	t.Helper()
	g := &gateway{h: New(opts), pools: upstream.NewSet(upstream.Options{})}
	g.srv = httptest.NewServer(g.h)
	t.Cleanup(func() {
		g.srv.Close()
		g.h.Close()
	})
	return g
}

func (g *gateway) load(t *testing.T, snap *model.Snapshot) {
	t.Helper()
	tbl, err := route.Compile(snap, g.pools.Sync(snap))
	if err != nil {
		t.Fatal(err)
	}
	g.h.Swap(tbl)
}

type response struct {
	code int
	body string
	hdr  http.Header
	seen seen
}

func do(t *testing.T, client *http.Client, req *http.Request) response {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	r := response{code: resp.StatusCode, body: string(body), hdr: resp.Header}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(body, &r.seen); err != nil {
			t.Fatalf("decoding backend answer %q: %v", body, err)
		}
	}
	return r
}

func (g *gateway) get(t *testing.T, host, target string, hdr ...string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, g.srv.URL+target, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	return do(t, g.srv.Client(), req)
}

func TestRouting(t *testing.T) {
	web, api, def := echoBackend(t, "web"), echoBackend(t, "api"), echoBackend(t, "default")
	g := newGateway(t, Options{})

	if r := g.get(t, "foo.com", "/"); r.code != 503 || r.body != "no configuration loaded yet\n" {
		t.Fatalf("before Swap: %d %q", r.code, r.body)
	}

	snap := &model.Snapshot{Hosts: []*model.VirtualHost{
		{Name: "foo.com", Routes: []*model.Route{
			prefix("/api", backend("default/api:80", addr(api))),
			prefix("/", backend("default/web:http", addr(web))),
		}},
		{Name: "empty.com", Routes: []*model.Route{prefix("/", backend("default/empty:8080"))}},
	}}
	g.load(t, snap)

	tests := []struct {
		host, target string
		code         int
		name, path   string
		rawQuery     string
	}{
		{"foo.com", "/", 200, "web", "/", ""},
		{"FOO.com:80", "/api/v1?x=1&y=%2F", 200, "api", "/api/v1", "x=1&y=%2F"},
		{"foo.com", "/apix", 200, "web", "/apix", ""},
		{"foo.com", "/web/../api/x", 200, "api", "/api/x", ""},
		{"foo.com", "//api//x/", 200, "api", "/api/x/", ""},
		{"bar.com", "/", 404, "", "", ""},
	}
	for _, tc := range tests {
		r := g.get(t, tc.host, tc.target)
		if r.code != tc.code || r.seen.Name != tc.name || r.seen.Path != tc.path || r.seen.Query != tc.rawQuery {
			t.Errorf("GET %s%s: got %d from %q path %q query %q, want %d from %q path %q query %q (%s)",
				tc.host, tc.target, r.code, r.seen.Name, r.seen.Path, r.seen.Query, tc.code, tc.name, tc.path, tc.rawQuery, r.body)
		}
		if tc.code == 200 && r.seen.Host != tc.host {
			t.Errorf("GET %s%s: backend saw Host %q, want it passed through", tc.host, tc.target, r.seen.Host)
		}
	}
	if r := g.get(t, "bar.com", "/"); r.body != "no route for this host and path\n" || r.hdr.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("404 answer: %q %q", r.body, r.hdr.Get("Content-Type"))
	}
	r := g.get(t, "empty.com", "/")
	if r.code != 503 || r.body != "no ready endpoints for service default/empty port 8080\n" {
		t.Errorf("no endpoints: %d %q", r.code, r.body)
	}

	// An escaped slash survives when the path needed no normalization.
	r = g.get(t, "foo.com", "/api/a%2Fb")
	if r.seen.Name != "api" || r.seen.RawPath != "/api/a%2Fb" {
		t.Errorf("escaped path: got %q raw %q", r.seen.Path, r.seen.RawPath)
	}

	// The default backend answers what no rule matches.
	snap.DefaultBackend = backend("default/fallback:80", addr(def))
	g.load(t, snap)
	if r := g.get(t, "bar.com", "/x"); r.code != 200 || r.seen.Name != "default" {
		t.Errorf("default backend: %d %q", r.code, r.seen.Name)
	}

	g.h.Swap(nil)
	if r := g.get(t, "foo.com", "/"); r.code != 503 {
		t.Errorf("after Swap(nil): %d", r.code)
	}
}

// refusedAddr returns a 127.0.0.1 address nobody listens on.
func refusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

func TestBadGatewayAndRetry(t *testing.T) {
	live := echoBackend(t, "live")
	dead := refusedAddr(t)

	t.Run("refused", func(t *testing.T) {
		g := newGateway(t, Options{})
		g.load(t, &model.Snapshot{DefaultBackend: backend("default/web:80", dead)})
		r := g.get(t, "x", "/")
		if r.code != 502 || r.body != "bad gateway: cannot reach service default/web port 80\n" {
			t.Fatalf("got %d %q", r.code, r.body)
		}
		if strings.Contains(r.body, "refused") || strings.Contains(r.body, "127.0.0.1") {
			t.Fatalf("error body leaks internals: %q", r.body)
		}
	})

	t.Run("retry GET on another endpoint", func(t *testing.T) {
		g := newGateway(t, Options{})
		g.load(t, &model.Snapshot{DefaultBackend: backend("default/web:80", dead, addr(live))})
		// Round robin starts with the first endpoint: the dead one.
		for i := range 10 {
			if r := g.get(t, "x", "/"); r.code != 200 || r.seen.Name != "live" {
				t.Fatalf("request %d: %d %q", i, r.code, r.body)
			}
		}
		st := g.pools.Get("default/web:80").Stats()
		if st[0].Addr != dead || st[0].Failures != 1 || st[0].EjectedUntil.IsZero() || st[0].InFlight != 0 || st[1].InFlight != 0 {
			t.Fatalf("dead endpoint should be ejected after exactly one failure: %+v", st)
		}
	})

	t.Run("no retry for POST", func(t *testing.T) {
		g := newGateway(t, Options{})
		g.load(t, &model.Snapshot{DefaultBackend: backend("default/web:80", dead, addr(live))})
		resp, err := g.srv.Client().Post(g.srv.URL+"/", "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 502 {
			t.Fatalf("POST to a dead endpoint: %d, want 502 (no retry)", resp.StatusCode)
		}
		if st := g.pools.Get("default/web:80").Stats(); st[0].Failures != 1 || st[0].EjectedUntil.IsZero() {
			t.Fatalf("failed POST not reported to passive health: %+v", st)
		}
	})

	t.Run("retry PUT with replayable body", func(t *testing.T) {
		g := newGateway(t, Options{})
		g.load(t, &model.Snapshot{DefaultBackend: backend("default/web:80", dead, addr(live))})
		// The server's request bodies have no GetBody, so a PUT with a
		// body is not retried; one without is.
		req, _ := http.NewRequest(http.MethodPut, g.srv.URL+"/", nil)
		if r := do(t, g.srv.Client(), req); r.code != 200 || r.seen.Method != "PUT" {
			t.Fatalf("PUT without body: %d %q", r.code, r.body)
		}
	})
}

func TestGatewayTimeout(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow-body" {
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			time.Sleep(300 * time.Millisecond) // longer than the header timeout
			io.WriteString(w, "done")
			return
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })

	g := newGateway(t, Options{})
	b := backend("default/slow:80", addr(slow))
	b.Timeouts.Response = 100 * time.Millisecond
	g.load(t, &model.Snapshot{DefaultBackend: b})
	r := g.get(t, "x", "/")
	if r.code != 504 || r.body != "gateway timeout: no answer in time from service default/slow port 80\n" {
		t.Fatalf("got %d %q, want 504", r.code, r.body)
	}
	// The timeout covers only the wait for headers, not the body.
	if r := g.get(t, "x", "/slow-body"); r.code != 200 || r.body != "done" {
		t.Fatalf("slow body after fast headers: %d %q", r.code, r.body)
	}
	if st := g.pools.Get(b.Name).Stats(); st[0].Failures != 0 || st[0].InFlight != 0 {
		t.Fatalf("a timeout is not a connection failure: %+v", st)
	}
}

func TestForwardedHeaders(t *testing.T) {
	be := echoBackend(t, "web")
	spoof := []string{
		"X-Forwarded-For", "6.6.6.6",
		"X-Forwarded-Proto", "https",
		"X-Forwarded-Host", "evil.com",
		"Forwarded", "for=6.6.6.6;proto=https",
		"X-Forwarded-Client-Cert", "Hash=abc",
		"SSL-Client-Cert", "forged",
		"Ssl-Client-Verify", "SUCCESS",
		"ssl-client-s-dn", "CN=admin",
		"X-Other", "kept",
	}
	tests := []struct {
		name    string
		trusted []netip.Prefix
		want    map[string]string
	}{
		{"untrusted peer", nil, map[string]string{
			"X-Forwarded-For":   "127.0.0.1",
			"X-Forwarded-Proto": "http",
			"X-Forwarded-Host":  "foo.com:8080",
			"Forwarded":         `for=127.0.0.1;host="foo.com:8080";proto=http`,
			"X-Other":           "kept",
		}},
		{"trusted peer", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.0/8")}, map[string]string{
			"X-Forwarded-For":   "6.6.6.6, 127.0.0.1",
			"X-Forwarded-Proto": "https",
			"X-Forwarded-Host":  "evil.com",
			"Forwarded":         `for=6.6.6.6;proto=https, for=127.0.0.1;host="foo.com:8080";proto=http`,
			"X-Other":           "kept",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newGateway(t, Options{TrustedProxies: tc.trusted})
			g.load(t, &model.Snapshot{DefaultBackend: backend("default/web:80", addr(be))})
			r := g.get(t, "foo.com:8080", "/", spoof...)
			for k, want := range tc.want {
				if got := strings.Join(r.seen.Header.Values(k), ", "); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			for k := range r.seen.Header {
				if strings.EqualFold(k, "X-Forwarded-Client-Cert") || strings.HasPrefix(strings.ToLower(k), "ssl-client") {
					t.Errorf("identity header %s reached the backend", k)
				}
			}
		})
	}
}

func TestForwardedElement(t *testing.T) {
	tests := []struct {
		client      netip.Addr
		host, proto string
		want        string
	}{
		{netip.MustParseAddr("192.0.2.1"), "foo.com", "https", "for=192.0.2.1;host=foo.com;proto=https"},
		{netip.MustParseAddr("2001:db8::1"), "foo.com:443", "http", `for="[2001:db8::1]";host="foo.com:443";proto=http`},
		{netip.Addr{}, "", "http", "for=unknown;proto=http"},
		{netip.MustParseAddr("192.0.2.1"), `a"b\c`, "http", `for=192.0.2.1;host="a\"b\\c";proto=http`},
	}
	for _, tc := range tests {
		if got := forwardedElement(tc.client, tc.host, tc.proto); got != tc.want {
			t.Errorf("forwardedElement(%v, %q, %q) = %s, want %s", tc.client, tc.host, tc.proto, got, tc.want)
		}
	}
}

func TestWebSocketEcho(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "want upgrade", 400)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		io.Copy(conn, brw) // echo until the client closes
	}))
	t.Cleanup(be.Close)
	for _, proto := range []model.Protocol{model.ProtocolHTTP, model.ProtocolH2C} {
		t.Run(string(proto), func(t *testing.T) {
			g := newGateway(t, Options{AccessLog: true})
			b := backend("default/ws:80", addr(be))
			b.Protocol = proto
			b.Timeouts.Response = time.Minute
			g.load(t, &model.Snapshot{DefaultBackend: b})

			conn, err := net.Dial("tcp", g.srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second)) // deadlock guard only
			fmt.Fprintf(conn, "GET /chat HTTP/1.1\r\nHost: ws.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "websocket" {
				t.Fatalf("upgrade: %d %v", resp.StatusCode, resp.Header)
			}
			for _, msg := range []string{"hello", "world, again"} {
				io.WriteString(conn, msg)
				buf := make([]byte, len(msg))
				if _, err := io.ReadFull(br, buf); err != nil || string(buf) != msg {
					t.Fatalf("echo: got %q, %v; want %q", buf, err, msg)
				}
			}
		})
	}
}

func TestStreaming(t *testing.T) {
	// With the access log on, flushes go through the status recorder.
	for _, accessLog := range []bool{false, true} {
		t.Run(fmt.Sprintf("accesslog=%v", accessLog), func(t *testing.T) {
			testStreaming(t, Options{AccessLog: accessLog})
		})
	}
}

func testStreaming(t *testing.T, opts Options) {
	firstSeen := make(chan struct{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		select {
		case <-firstSeen: // the client got the first chunk while we wait
		case <-time.After(10 * time.Second): // deadlock guard only
		}
		io.WriteString(w, "second\n")
	}))
	t.Cleanup(be.Close)
	g := newGateway(t, opts)
	g.load(t, &model.Snapshot{DefaultBackend: backend("default/stream:80", addr(be))})

	resp, err := g.srv.Client().Get(g.srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	got := make(chan string, 1)
	go func() {
		line, _ := br.ReadString('\n')
		got <- line
	}()
	select {
	case line := <-got:
		if line != "first\n" {
			t.Fatalf("first chunk %q", line)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("first chunk not delivered while the backend was still writing: the proxy buffers")
	}
	close(firstSeen)
	rest, _ := io.ReadAll(br)
	if string(rest) != "second\n" {
		t.Fatalf("rest %q", rest)
	}
}

func TestH2CBackend(t *testing.T) {
	be := httptest.NewUnstartedServer(echoHandler("h2c"))
	be.Config.Protocols = new(http.Protocols)
	be.Config.Protocols.SetHTTP1(true)
	be.Config.Protocols.SetUnencryptedHTTP2(true)
	be.Start()
	t.Cleanup(be.Close)

	g := newGateway(t, Options{})
	b := backend("default/grpc:h2c", addr(be))
	b.Protocol = model.ProtocolH2C
	g.load(t, &model.Snapshot{DefaultBackend: b})
	for range 3 {
		if r := g.get(t, "x", "/p"); r.code != 200 || r.seen.Proto != 2 {
			t.Fatalf("h2c backend saw HTTP/%d (status %d %q), want HTTP/2", r.seen.Proto, r.code, r.body)
		}
	}
}

func TestHTTP2Client(t *testing.T) {
	be := echoBackend(t, "web")
	h := New(Options{})
	t.Cleanup(func() { h.Close() })
	pools := upstream.NewSet(upstream.Options{})
	snap := &model.Snapshot{DefaultBackend: backend("default/web:80", addr(be))}
	tbl, err := route.Compile(snap, pools.Sync(snap))
	if err != nil {
		t.Fatal(err)
	}
	h.Swap(tbl)

	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/a/b?q=1", strings.NewReader("payload"))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s seen
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 || s.Path != "/a/b" || s.BodySize != 7 || s.Proto != 1 {
		t.Fatalf("over h2: client proto %d status %d, backend saw %+v", resp.ProtoMajor, resp.StatusCode, s)
	}
	if got := s.Header.Get("X-Forwarded-Proto"); got != "https" {
		t.Fatalf("X-Forwarded-Proto %q, want https", got)
	}
}

// patternReader yields n deterministic bytes without holding them.
type patternReader struct{ left int64 }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	for i := range b {
		b[i] = byte(p.left - int64(i))
	}
	p.left -= int64(len(b))
	return len(b), nil
}

func TestLargeBodies(t *testing.T) {
	const size = 64 << 20
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			io.Copy(w, &patternReader{left: size}) // chunked: unknown length
			return
		}
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
	}))
	t.Cleanup(be.Close)
	g := newGateway(t, Options{})
	g.load(t, &model.Snapshot{DefaultBackend: backend("default/big:80", addr(be))})

	want := sha256.New()
	io.Copy(want, &patternReader{left: size})
	wantSum := hex.EncodeToString(want.Sum(nil))

	req, _ := http.NewRequest(http.MethodPut, g.srv.URL+"/up", io.NopCloser(&patternReader{left: size}))
	r := do(t, g.srv.Client(), req)
	if r.code != 200 || r.body != fmt.Sprintf("%d %s", size, wantSum) {
		t.Fatalf("upload: %d %q", r.code, r.body)
	}

	resp, err := g.srv.Client().Get(g.srv.URL + "/down")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := sha256.New()
	n, err := io.Copy(got, resp.Body)
	if err != nil || n != size || hex.EncodeToString(got.Sum(nil)) != wantSum {
		t.Fatalf("download: %d bytes, err %v", n, err)
	}
}

func TestSwapUnderLoad(t *testing.T) {
	a, b := echoBackend(t, "a"), echoBackend(t, "b")
	g := newGateway(t, Options{})
	snapA := &model.Snapshot{Hosts: []*model.VirtualHost{{Name: "x", Routes: []*model.Route{prefix("/", backend("default/a:80", addr(a)))}}}}
	snapB := &model.Snapshot{Hosts: []*model.VirtualHost{{Name: "x", Routes: []*model.Route{prefix("/", backend("default/b:80", addr(b)))}}}}
	g.load(t, snapA)
	tblA, _ := route.Compile(snapA, upstream.NewSet(upstream.Options{}).Sync(snapA))
	tblB, _ := route.Compile(snapB, upstream.NewSet(upstream.Options{}).Sync(snapB))

	var (
		wg       sync.WaitGroup
		stop     atomic.Bool
		failures atomic.Int64
		answered [2]atomic.Int64
	)
	var swapper sync.WaitGroup
	for range 4 {
		swapper.Go(func() {
			for i := 0; !stop.Load(); i++ {
				if i%2 == 0 {
					g.h.Swap(tblB)
				} else {
					g.h.Swap(tblA)
				}
				time.Sleep(100 * time.Microsecond)
			}
		})
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	defer client.CloseIdleConnections()
	for range 16 {
		wg.Go(func() {
			for range 100 {
				req, _ := http.NewRequest(http.MethodGet, g.srv.URL+"/", nil)
				req.Host = "x"
				resp, err := client.Do(req)
				if err != nil {
					failures.Add(1)
					continue
				}
				var s seen
				err = json.NewDecoder(resp.Body).Decode(&s)
				resp.Body.Close()
				switch {
				case err != nil || resp.StatusCode != 200:
					failures.Add(1)
				case s.Name == "a":
					answered[0].Add(1)
				case s.Name == "b":
					answered[1].Add(1)
				}
			}
		})
	}
	wg.Wait()
	stop.Store(true)
	swapper.Wait()
	if n := failures.Load(); n != 0 {
		t.Fatalf("%d of 1600 requests failed during swaps", n)
	}
	if answered[0].Load()+answered[1].Load() != 1600 || answered[0].Load() == 0 || answered[1].Load() == 0 {
		t.Fatalf("answers a=%d b=%d, want both tables used for 1600 requests", answered[0].Load(), answered[1].Load())
	}
}

// TestAccessLogClientBehindTrustedProxy: the access log's client is the
// one source ranges and rate limits see, not the proxy in front.
func TestAccessLogClientBehindTrustedProxy(t *testing.T) {
	be := echoBackend(t, "web")
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(&lockedWriter{w: &buf, mu: &mu}, nil))
	g := newGateway(t, Options{Logger: logger, AccessLog: true, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	g.load(t, &model.Snapshot{Hosts: []*model.VirtualHost{{Name: "foo.com", Routes: []*model.Route{prefix("/", backend("default/web:80", addr(be)))}}}})
	g.get(t, "foo.com", "/", "X-Forwarded-For", "203.0.113.9, 127.0.0.2")

	mu.Lock()
	line := strings.TrimSpace(buf.String())
	mu.Unlock()
	var e map[string]any
	if err := json.Unmarshal([]byte(line), &e); err != nil {
		t.Fatalf("%v: %q", err, line)
	}
	if e["client"] != "203.0.113.9" {
		t.Errorf("access log client = %v, want 203.0.113.9 (%s)", e["client"], line)
	}
}

func TestAccessLog(t *testing.T) {
	be := echoBackend(t, "web")
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(&lockedWriter{w: &buf, mu: &mu}, nil))
	g := newGateway(t, Options{Logger: logger, AccessLog: true})
	g.load(t, &model.Snapshot{Hosts: []*model.VirtualHost{{Name: "foo.com", Routes: []*model.Route{prefix("/api", backend("default/web:80", addr(be)))}}}})

	r := g.get(t, "foo.com", "/api/x")
	g.get(t, "foo.com", "/nope")

	mu.Lock()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	mu.Unlock()
	if len(lines) != 2 {
		t.Fatalf("want 2 access lines, got %q", lines)
	}
	var e map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &e); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"level": "INFO", "msg": "access", "host": "foo.com", "route_host": "foo.com", "route": "Prefix /api",
		"ingress": "Ingress default/web", "backend": "default/web:80", "upstream": addr(be),
		"method": "GET", "path": "/api/x", "status": float64(200), "bytes": float64(len(r.body)), "client": "127.0.0.1",
	}
	for k, v := range want {
		if e[k] != v {
			t.Errorf("access log %s = %v, want %v (%s)", k, e[k], v, lines[0])
		}
	}
	if d, ok := e["duration"].(float64); !ok || d <= 0 {
		t.Errorf("access log duration %v", e["duration"])
	}
	if err := json.Unmarshal([]byte(lines[1]), &e); err != nil || e["status"] != float64(404) || e["backend"] != "" {
		t.Errorf("404 line: %s", lines[1])
	}

	// Off: nothing is written.
	buf.Reset()
	g2 := newGateway(t, Options{Logger: logger})
	g2.load(t, &model.Snapshot{DefaultBackend: backend("default/web:80", addr(be))})
	g2.get(t, "x", "/")
	mu.Lock()
	defer mu.Unlock()
	if buf.Len() != 0 {
		t.Fatalf("access log off still wrote %q", buf.String())
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestConnectRejected(t *testing.T) {
	g := newGateway(t, Options{})
	g.load(t, &model.Snapshot{DefaultBackend: backend("default/web:80", refusedAddr(t))})
	conn, err := net.Dial("tcp", g.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("CONNECT: %d", resp.StatusCode)
	}
}

func TestCloseTwice(t *testing.T) {
	h := New(Options{})
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := new(Handler).Close(); err != nil {
		t.Fatal(err)
	}
}

func TestConnectTimeout(t *testing.T) {
	// A connect timeout of 1ns expires before any dial can finish: the
	// dialer must take it from the backend, and the answer is 504.
	be := echoBackend(t, "web")
	g := newGateway(t, Options{})
	b := backend("default/web:80", addr(be))
	b.Timeouts.Connect = time.Nanosecond
	g.load(t, &model.Snapshot{DefaultBackend: b})
	r := g.get(t, "x", "/")
	if r.code != 504 || r.body != "gateway timeout: no answer in time from service default/web port 80\n" {
		t.Fatalf("got %d %q, want 504", r.code, r.body)
	}
	if st := g.pools.Get(b.Name).Stats(); st[0].Failures != 1 || st[0].EjectedUntil.IsZero() {
		t.Fatalf("a connect timeout is a connection failure: %+v", st)
	}
}
