package wasm

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tetratelabs/wazero/api"
)

// fixture is a real instance (noop guest, one 64 KiB page) whose host
// functions tests call directly, as the guest would.
type fixture struct {
	t   testing.TB
	f   *Filter
	in  *instance
	rec *httptest.ResponseRecorder
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	h := newHost(t, Config{})
	f := newFilter(t, h, FilterSpec{Name: "fx", Module: guest("noop"), Config: []byte("cfg"), Pool: PoolConfig{Min: 1, Max: 1}})
	in, err := f.pool.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.end(); f.pool.Put(in) })
	return &fixture{t: t, f: f, in: in}
}

func (fx *fixture) begin(r *http.Request) {
	fx.rec = httptest.NewRecorder()
	fx.in.begin(fx.rec, r)
}

// call runs a host function with params and returns stack[0].
func (fx *fixture) call(fn api.GoModuleFunc, params ...uint64) uint64 {
	stack := make([]uint64, max(len(params), 1))
	copy(stack, params)
	fn(fx.in, fx.in.mod, stack)
	return stack[0]
}

// list calls a count_len function with buf=1024 and a large limit, and
// splits the NUL-terminated result.
func (fx *fixture) list(fn api.GoModuleFunc, params ...uint64) []string {
	const buf = 1024
	cl := fx.call(fn, append(params, buf, 60000)...)
	count, n := uint32(cl>>32), uint32(cl)
	b, ok := fx.in.mem.Read(buf, n)
	if !ok {
		fx.t.Fatalf("result [%d,+%d) outside memory", buf, n)
	}
	var out []string
	for _, s := range bytes.SplitAfter(b, []byte{0}) {
		if len(s) > 0 {
			out = append(out, string(s[:len(s)-1]))
		}
	}
	if len(out) != int(count) {
		fx.t.Fatalf("count %d but %d strings in %q", count, len(out), b)
	}
	return out
}

// put writes s into guest memory at off and returns (off, len).
func (fx *fixture) put(off uint32, s string) (uint64, uint64) {
	if !fx.in.mem.WriteString(off, s) {
		fx.t.Fatalf("write at %d", off)
	}
	return uint64(off), uint64(len(s))
}

func TestHeaderFunctions(t *testing.T) {
	fx := newFixture(t)
	r := httptest.NewRequest(http.MethodGet, "http://example.com/a?b=c", nil)
	r.Header.Set("B-Header", "2")
	r.Header.Add("A-Header", "1")
	r.Header.Add("A-Header", "one")
	fx.begin(r)
	fx.in.st.features = FeatureTrailers | FeatureBufferResponse

	if got := fx.list(getHeaderNames, headerKindRequest); !equalStrings(got, []string{"a-header", "b-header", "host"}) {
		t.Errorf("request names = %q", got)
	}
	n, l := fx.put(0, "a-HEADER")
	if got := fx.list(getHeaderValues, headerKindRequest, n, l); !equalStrings(got, []string{"1", "one"}) {
		t.Errorf("a-header values = %q", got)
	}
	n, l = fx.put(0, "HOST")
	if got := fx.list(getHeaderValues, headerKindRequest, n, l); !equalStrings(got, []string{"example.com"}) {
		t.Errorf("host = %q", got)
	}
	// buf_limit too small: nothing written, length still returned.
	fx.in.mem.WriteString(2000, "xxxx")
	n, l = fx.put(0, "b-header")
	if cl := fx.call(getHeaderValues, headerKindRequest, n, l, 2000, 1); cl != 1<<32|2 {
		t.Errorf("count_len = %#x, want 1<<32|2", cl)
	}
	if b, _ := fx.in.mem.Read(2000, 4); string(b) != "xxxx" {
		t.Errorf("memory written despite small buf_limit: %q", b)
	}

	// Mutations go to a private copy of the request, never the original.
	v, vl := fx.put(100, "v")
	n, l = fx.put(0, "x-new")
	fx.call(setHeaderValue, headerKindRequest, n, l, v, vl)
	fx.call(addHeaderValue, headerKindRequest, n, l, v, vl)
	n, l = fx.put(0, "a-header")
	fx.call(removeHeader, headerKindRequest, n, l)
	out := fx.in.request()
	if out == r || r.Header.Get("X-New") != "" || r.Header.Get("A-Header") != "1" {
		t.Error("the original request was modified")
	}
	if got := out.Header.Values("X-New"); !equalStrings(got, []string{"v", "v"}) || out.Header.Get("A-Header") != "" {
		t.Errorf("outgoing headers %v", out.Header)
	}

	// Response headers and trailers.
	n, l = fx.put(0, "x-resp")
	fx.call(setHeaderValue, headerKindResponse, n, l, v, vl)
	n, l = fx.put(0, "grpc-status")
	fx.call(setHeaderValue, headerKindResponseTrailers, n, l, v, vl)
	if got := fx.list(getHeaderNames, headerKindResponse); !equalStrings(got, []string{"x-resp"}) {
		t.Errorf("response names = %q", got)
	}
	if got := fx.list(getHeaderNames, headerKindResponseTrailers); !equalStrings(got, []string{"grpc-status"}) {
		t.Errorf("response trailer names = %q", got)
	}
	if got := fx.list(getHeaderValues, headerKindResponseTrailers, n, l); !equalStrings(got, []string{"v"}) {
		t.Errorf("grpc-status trailer = %q", got)
	}
	// Without the trailers feature: empty get, trapping set.
	fx.in.st.features = 0
	if got := fx.list(getHeaderNames, headerKindResponseTrailers); len(got) != 0 {
		t.Errorf("trailers without feature: %q", got)
	}
	mustTrap(t, "trailers need enable_features(trailers)", func() {
		fx.call(setHeaderValue, headerKindResponseTrailers, n, l, v, vl)
	})
	mustTrap(t, `invalid header name "bad name"`, func() {
		n, l := fx.put(0, "bad name")
		fx.call(setHeaderValue, headerKindRequest, n, l, v, vl)
	})
	mustTrap(t, "invalid value", func() {
		v, vl := fx.put(100, "a\r\nb")
		fx.call(setHeaderValue, headerKindRequest, n, l, v, vl)
	})
	mustTrap(t, "invalid header_kind 7", func() { fx.call(getHeaderNames, 7, 0, 0) })
}

func TestRequestFunctions(t *testing.T) {
	fx := newFixture(t)
	r := httptest.NewRequest(http.MethodPost, "/a%2Fb?q=1", nil)
	r.RemoteAddr = "127.0.0.1:4242"
	fx.begin(r)
	str := func(fn api.GoModuleFunc) string {
		n := uint32(fx.call(fn, 3000, 1000))
		b, _ := fx.in.mem.Read(3000, n)
		return string(b)
	}
	for fn, want := range map[string]struct {
		f    api.GoModuleFunc
		want string
	}{
		"get_method":           {getMethod, "POST"},
		"get_uri":              {getURI, "/a%2Fb?q=1"},
		"get_protocol_version": {getProtocolVersion, "HTTP/1.1"},
		"get_source_addr":      {getSourceAddr, "127.0.0.1:4242"},
		"get_config":           {getConfig, "cfg"},
	} {
		if got := str(want.f); got != want.want {
			t.Errorf("%s = %q, want %q", fn, got, want.want)
		}
	}
	p, l := fx.put(0, "PATCH")
	fx.call(setMethod, p, l)
	p, l = fx.put(0, "/x%26y?name=chip%26dale")
	fx.call(setURI, p, l)
	if got := str(getURI); got != "/x%26y?name=chip%26dale" {
		t.Errorf("uri after set = %q", got)
	}
	if out := fx.in.request(); out.Method != "PATCH" || out.URL.Path != "/x&y" || r.Method != "POST" || r.URL.Path != "/a/b" {
		t.Errorf("out %s %s, original %s %s", out.Method, out.URL.Path, r.Method, r.URL.Path)
	}
	mustTrap(t, `invalid method "G T"`, func() { p, l := fx.put(0, "G T"); fx.call(setMethod, p, l) })
	mustTrap(t, `uri "x" must start with '/'`, func() { p, l := fx.put(0, "x"); fx.call(setURI, p, l) })
	mustTrap(t, "invalid status code 42", func() { fx.call(setStatusCode, 42) })
	mustTrap(t, "buf_limit must not be zero", func() { fx.call(readBody, bodyKindRequest, 0, 0) })
	mustTrap(t, "invalid body_kind 9", func() { fx.call(readBody, 9, 0, 10) })
	if got := fx.call(getStatusCode); got != 200 {
		t.Errorf("default status = %d", got)
	}
	fx.call(setStatusCode, 418)
	if got := fx.call(getStatusCode); got != 418 {
		t.Errorf("status = %d", got)
	}
	if got := fx.call(logEnabled, uint64(uint32(3))); got != 0 {
		t.Errorf("log_enabled(none) = %d", got)
	}
	if got := fx.call(enableFeatures, 0xff); Features(got) != supportedFeatures {
		t.Errorf("enable_features = %#x", got)
	}
}

// mustTrap asserts fn panics with a guest error containing want.
func mustTrap(t *testing.T, want string, fn func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		err, ok := r.(*errGuest)
		if !ok {
			t.Errorf("recovered %v (%T), want a guest error containing %q", r, r, want)
			return
		}
		if !bytes.Contains([]byte(err.Error()), []byte(want)) {
			t.Errorf("trap %q, want it to contain %q", err, want)
		}
	}()
	fn()
}
