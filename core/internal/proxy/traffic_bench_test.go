package proxy

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/core/internal/route"
)

// benchPolicy is a busy traffic policy: 16 allowed ranges (the client's
// is last), 4 denied ones, a body limit, a per-client in-flight limit and
// read/send timeouts.
func benchPolicy() *model.Traffic {
	tr := &model.Traffic{MaxBodyBytes: 1 << 20, MaxConnsPerClient: 100, ReadTimeout: time.Minute, SendTimeout: time.Minute}
	for i := range 15 {
		tr.AllowSources = append(tr.AllowSources, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 16))
	}
	tr.AllowSources = append(tr.AllowSources, netip.MustParsePrefix("127.0.0.0/8"))
	for i := range 4 {
		tr.DenySources = append(tr.DenySources, netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(i), 0}), 24))
	}
	return tr
}

// BenchmarkTrafficAdmit is the policy check alone (admit + release), per
// request, against a route without a policy, in the same run.
func BenchmarkTrafficAdmit(b *testing.B) {
	h := New(Options{})
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "127.0.0.1:40000"
	for _, c := range []struct {
		name string
		tr   *model.Traffic
	}{{"none", nil}, {"policy", benchPolicy()}} {
		st := &reqState{res: route.Result{Route: &model.Route{Traffic: c.tr}}}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				release, ok := h.admit(w, r, st)
				if !ok {
					b.Fatal("refused")
				}
				release()
			}
		})
	}
}

// BenchmarkTrafficProxy is a GET through the proxy on a real loopback
// server, with and without the policy (timeouts included), in the same
// run.
func BenchmarkTrafficProxy(b *testing.B) {
	body := []byte("hello, world\n")
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(body)
	}))
	defer be.Close()
	for _, c := range []struct {
		name string
		tr   *model.Traffic
	}{{"none", nil}, {"policy", benchPolicy()}} {
		rt := prefix("/", backend("default/bench:80", addr(be)))
		rt.Traffic = c.tr
		srv := benchProxy(b, Options{}, rt)
		b.Run(c.name, func(b *testing.B) { benchGets(b, srv.URL, body) })
	}
}
