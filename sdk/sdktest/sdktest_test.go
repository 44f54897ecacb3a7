//go:build !wasip1

package sdktest_test

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicegw/sluice/sdk"
	"github.com/sluicegw/sluice/sdk/sdktest"
)

// funcFilter adapts functions to sdk.Handler and sdk.ResponseHandler.
type funcFilter struct {
	req  func(sdk.Request, sdk.Response) bool
	resp func(sdk.Request, sdk.Response, bool)
}

func (f funcFilter) HandleRequest(req sdk.Request, resp sdk.Response) bool { return f.req(req, resp) }

func (f funcFilter) HandleResponse(req sdk.Request, resp sdk.Response, isError bool) {
	if f.resp != nil {
		f.resp(req, resp, isError)
	}
}

func TestRequestAccessors(t *testing.T) {
	long := strings.Repeat("v", 5000) // larger than the SDK's first buffer
	var got []string
	f := funcFilter{req: func(req sdk.Request, resp sdk.Response) bool {
		h := req.Header()
		got = []string{
			req.Method(), req.URI(), req.ProtocolVersion(), req.SourceAddr(),
			h.Get("x-a"), strings.Join(h.Values("X-Multi"), ","), h.Get("missing"),
			strings.Join(h.Names(), ","), h.Get("host"), h.Get("x-long"),
		}
		h.Set("X-Set", "1")
		h.Add("X-Multi", "c")
		h.Del("X-A")
		req.SetMethod("POST")
		req.SetURI("/rewritten%2Fx?q=1")
		return true
	}}
	r := httptest.NewRequest("GET", "http://shop.test/a/b?x=y%26z", nil)
	r.Header.Set("X-A", "a")
	r.Header["X-Multi"] = []string{"a", "b"}
	r.Header.Set("X-Long", long)
	res := sdktest.New(f, sdktest.Options{}).Do(r)
	want := []string{"GET", "/a/b?x=y%26z", "HTTP/1.1", "192.0.2.1:1234", "a", "a,b", "",
		"host,x-a,x-long,x-multi", "shop.test", long}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("filter read\n%q\nwant\n%q", got, want)
	}
	if res.Err != nil || !res.Next || res.Status != 200 || string(res.Body) != "upstream\n" {
		t.Fatalf("result %+v", res)
	}
	u := res.Upstream
	if u.Method != "POST" || u.URL.EscapedPath() != "/rewritten%2Fx" || u.URL.RawQuery != "q=1" ||
		u.Header.Get("X-Set") != "1" || u.Header.Get("X-A") != "" || strings.Join(u.Header.Values("X-Multi"), ",") != "a,b,c" {
		t.Errorf("upstream got %s %s %v", u.Method, u.URL, u.Header)
	}
	if r.Header.Get("X-Set") != "" || r.Method != "GET" {
		t.Errorf("the caller's request was modified")
	}
}

func TestOwnAnswer(t *testing.T) {
	called := false
	f := funcFilter{req: func(req sdk.Request, resp sdk.Response) bool {
		resp.SetStatusCode(403)
		resp.Header().Set("Content-Type", "text/plain")
		resp.Body().WriteString("no\n")
		return false
	}, resp: func(sdk.Request, sdk.Response, bool) { called = true }}
	res := sdktest.New(f, sdktest.Options{}).Do(httptest.NewRequest("GET", "/", nil))
	if res.Next || res.Status != 403 || string(res.Body) != "no\n" || res.Header.Get("Content-Type") != "text/plain" || res.Upstream != nil {
		t.Fatalf("result %+v", res)
	}
	if called {
		t.Error("HandleResponse was called after an own answer")
	}
}

func TestBodies(t *testing.T) {
	var reqBody string
	f := funcFilter{req: func(req sdk.Request, resp sdk.Response) bool {
		sdk.EnableFeatures(sdk.FeatureBufferRequest | sdk.FeatureBufferResponse)
		b, err := req.Body().ReadAll()
		if err != nil {
			t.Error(err)
		}
		reqBody = string(b)
		req.Body().WriteString("new ")
		req.Body().WriteString("body")
		return true
	}, resp: func(req sdk.Request, resp sdk.Response, isError bool) {
		b, _ := resp.Body().ReadAll()
		resp.Body().WriteString("<<" + string(b) + ">>")
		resp.SetStatusCode(201)
		resp.Header().Set("X-Seen", "yes")
	}}
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	})
	res := sdktest.New(f, sdktest.Options{Upstream: echo}).Do(httptest.NewRequest("POST", "/", strings.NewReader(strings.Repeat("x", 3000))))
	if reqBody != strings.Repeat("x", 3000) {
		t.Errorf("request body read %d bytes", len(reqBody))
	}
	if string(res.UpstreamBody) != "new body" || res.Status != 201 || string(res.Body) != "<<new body>>" || res.Header.Get("X-Seen") != "yes" {
		t.Fatalf("result %d %q %q %v", res.Status, res.UpstreamBody, res.Body, res.Header)
	}
}

func TestUnbufferedResponseIsNotChanged(t *testing.T) {
	f := funcFilter{req: func(sdk.Request, sdk.Response) bool { return true },
		resp: func(req sdk.Request, resp sdk.Response, isError bool) {
			if n, _ := resp.Body().ReadAll(); len(n) != 0 {
				t.Errorf("read %q from an unbuffered response", n)
			}
			resp.SetStatusCode(500) // no effect: already sent
			resp.Header().Set("X-Late", "1")
		}}
	res := sdktest.New(f, sdktest.Options{}).Do(httptest.NewRequest("GET", "/", nil))
	if res.Status != 200 || string(res.Body) != "upstream\n" || res.Header.Get("X-Late") != "" {
		t.Fatalf("result %d %q %v", res.Status, res.Body, res.Header)
	}
}

func TestTraps(t *testing.T) {
	for name, fn := range map[string]func(sdk.Request, sdk.Response){
		"header name": func(req sdk.Request, _ sdk.Response) { req.Header().Set("bad name", "x") },
		"status":      func(_ sdk.Request, resp sdk.Response) { resp.SetStatusCode(42) },
		"uri":         func(req sdk.Request, _ sdk.Response) { req.SetURI("nope") },
		"panic":       func(sdk.Request, sdk.Response) { panic("boom") },
	} {
		t.Run(name, func(t *testing.T) {
			f := funcFilter{req: func(req sdk.Request, resp sdk.Response) bool { fn(req, resp); return true }}
			res := sdktest.New(f, sdktest.Options{}).Do(httptest.NewRequest("GET", "/", nil))
			if res.Err == nil || res.Status != 500 || res.Upstream != nil {
				t.Fatalf("result %+v, want a trap", res)
			}
		})
	}
}

func TestConfigAndLog(t *testing.T) {
	f := funcFilter{req: func(req sdk.Request, resp sdk.Response) bool {
		sdk.Log(sdk.LogInfo, "config "+string(sdk.Config()))
		if !sdk.LogEnabled(sdk.LogDebug) || sdk.LogEnabled(sdk.LogNone) {
			t.Error("LogEnabled")
		}
		return true
	}}
	res := sdktest.New(f, sdktest.Options{Config: []byte(`{"a":1}`)}).Do(httptest.NewRequest("GET", "/", nil))
	if want := []string{`info: config {"a":1}`}; !reflect.DeepEqual(res.Logs, want) {
		t.Fatalf("logs %q, want %q", res.Logs, want)
	}
}

func TestTLSPeer(t *testing.T) {
	spiffe, _ := url.Parse("spiffe://shop.test/web")
	other, _ := url.Parse("https://shop.test/id")
	cert := &x509.Certificate{
		Raw:      []byte("der"),
		Subject:  pkix.Name{CommonName: "web", Organization: []string{"Shop"}},
		Issuer:   pkix.Name{CommonName: "ca"},
		DNSNames: []string{"web.shop.test", "alt.shop.test"},
		URIs:     []*url.URL{other, spiffe},
	}
	var got sdk.Peer
	f := funcFilter{req: func(sdk.Request, sdk.Response) bool { got = sdk.TLSPeer(); return true }}
	h := sdktest.New(f, sdktest.Options{})
	for _, tc := range []struct {
		name  string
		state *tls.ConnectionState
		want  sdk.Peer
	}{
		{"plain", nil, sdk.Peer{}},
		{"no cert", &tls.ConnectionState{}, sdk.Peer{}},
		{"unverified", &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}, sdk.Peer{
			Status: sdk.PeerUnverified, Subject: "CN=web,O=Shop", Issuer: "CN=ca",
			DNSNames: []string{"web.shop.test", "alt.shop.test"}, URIs: []string{"https://shop.test/id", "spiffe://shop.test/web"},
			SPIFFEID: "spiffe://shop.test/web", SHA256: sha256hex("der"),
		}},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.TLS = tc.state
		if res := h.Do(r); res.Err != nil {
			t.Fatal(res.Err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: peer %+v, want %+v", tc.name, got, tc.want)
		}
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}, VerifiedChains: [][]*x509.Certificate{{cert}}}
	h.Do(r)
	if got.Status != sdk.PeerVerified || got.Status.String() != "verified" {
		t.Errorf("status %v, want verified", got.Status)
	}
}

func TestRateTake(t *testing.T) {
	now := time.Unix(1000, 0)
	var d sdk.Decision
	var err error
	limit := sdk.Limit{Rate: 1, Period: time.Second, Burst: 2}
	f := funcFilter{req: func(sdk.Request, sdk.Response) bool { d, err = sdk.RateTake("k", limit); return d.Allowed }}
	h := sdktest.New(f, sdktest.Options{Now: func() time.Time { return now }})
	for i, want := range []sdk.Decision{
		{Allowed: true, Remaining: 1}, {Allowed: true, Remaining: 0}, {Remaining: 0, RetryAfter: time.Second},
	} {
		res := h.Do(httptest.NewRequest("GET", "/", nil))
		if err != nil || d != want || res.Next != want.Allowed {
			t.Fatalf("take %d: %+v %v, want %+v", i, d, err, want)
		}
	}
	now = now.Add(time.Second)
	if h.Do(httptest.NewRequest("GET", "/", nil)); !d.Allowed {
		t.Fatalf("after a refill: %+v", d)
	}
	for _, bad := range []sdk.Limit{{Rate: 0, Period: time.Second, Burst: 1}, {Rate: 1, Period: time.Microsecond, Burst: 1}, {Rate: 1, Period: time.Second}} {
		limit = bad
		if h.Do(httptest.NewRequest("GET", "/", nil)); err == nil {
			t.Errorf("limit %+v: no error", bad)
		}
	}
	limit = sdk.Limit{Rate: 1, Period: time.Second, Burst: 1}
	down := sdktest.New(f, sdktest.Options{StoreDown: true})
	if down.Do(httptest.NewRequest("GET", "/", nil)); !errors.Is(err, sdk.ErrUnavailable) {
		t.Errorf("store down: %v, want ErrUnavailable", err)
	}
}

func TestCounterAndMetric(t *testing.T) {
	var v int64
	var errs []error
	f := funcFilter{req: func(sdk.Request, sdk.Response) bool {
		var err error
		v, err = sdk.CounterAdd("hits", 2)
		errs = append(errs, err, sdk.MetricAdd("requests_total", 1), sdk.MetricAdd("Bad-Name", 1))
		return true
	}}
	h := sdktest.New(f, sdktest.Options{})
	h.Do(httptest.NewRequest("GET", "/", nil))
	h.Do(httptest.NewRequest("GET", "/", nil))
	if v != 4 || h.Counter("hits") != 4 || h.Metrics()["requests_total"] != 2 {
		t.Errorf("counter %d/%d, metrics %v", v, h.Counter("hits"), h.Metrics())
	}
	if errs[0] != nil || errs[1] != nil || errs[2] == nil {
		t.Errorf("errors %v", errs)
	}
}

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestHammer: Do from many goroutines (the SDK's native host is global:
// Do serializes) keeps every request's state to itself.
func TestHammer(t *testing.T) {
	f := funcFilter{req: func(req sdk.Request, resp sdk.Response) bool {
		id := req.Header().Get("X-Id")
		if _, err := sdk.CounterAdd("n", 1); err != nil {
			t.Error(err)
		}
		req.Header().Set("X-Echo", id)
		return true
	}}
	h := sdktest.New(f, sdktest.Options{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				id := fmt.Sprint(g, "-", i)
				r := httptest.NewRequest("GET", "/", nil)
				r.Header.Set("X-Id", id)
				if res := h.Do(r); res.Upstream == nil || res.Upstream.Header.Get("X-Echo") != id {
					t.Errorf("request %s: got %v", id, res.Upstream)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := h.Counter("n"); n != 8*200 {
		t.Errorf("counter %d, want %d", n, 8*200)
	}
}

func TestRoute(t *testing.T) {
	var got string
	f := funcFilter{req: func(sdk.Request, sdk.Response) bool { got = sdk.Route(); return true }}
	for _, route := range []string{"default/web shop.test /cart", ""} {
		got = "unset"
		sdktest.New(f, sdktest.Options{Route: route}).Do(httptest.NewRequest("GET", "/", nil))
		if got != route {
			t.Fatalf("sdk.Route() = %q, want %q", got, route)
		}
	}
}
