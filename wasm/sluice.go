package wasm

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/tetratelabs/wazero/api"
)

// The "sluice" import module: what http-wasm lacks. Optional: guests that
// do not import it are plain http-wasm guests. Signatures and semantics are
// published in sdk/ABI.md.

const sluiceModule = "sluice"

// Fields of tls_peer_get.
const (
	peerSubject  = 0
	peerIssuer   = 1
	peerDNSSANs  = 2
	peerURISANs  = 3
	peerSPIFFEID = 4
	peerSHA256   = 5
)

// Results of tls_peer_status.
const (
	peerNone       = 0 // no TLS, or no client certificate
	peerUnverified = 1 // a client certificate that was not verified
	peerVerified   = 2 // a client certificate verified against the client CA
)

var sluiceFuncs = []hostFunc{
	{"tls_peer_status", tlsPeerStatus, nil, []api.ValueType{i32}},
	{"tls_peer_get", tlsPeerGet, []api.ValueType{i32, i32, i32}, []api.ValueType{i64}},
	{"tls_peer", tlsPeer, []api.ValueType{i32, i32}, []api.ValueType{i64}},
	{"route", routeFn, []api.ValueType{i32, i32}, []api.ValueType{i32}},
	{"rate_take", rateTake, []api.ValueType{i32, i32, i32, i32, i32, i32}, []api.ValueType{i32}},
	{"counter_add", counterAdd, []api.ValueType{i32, i32, i64, i32}, []api.ValueType{i32}},
	{"metric_add", metricAdd, []api.ValueType{i32, i32, i64}, nil},
}

func peerCert(in *instance) *x509.Certificate {
	t := in.st.r.TLS
	if t == nil || len(t.PeerCertificates) == 0 {
		return nil
	}
	return t.PeerCertificates[0]
}

func tlsPeerStatus(ctx context.Context, mod api.Module, stack []uint64) {
	in := mustRequest(ctx, "sluice.tls_peer_status")
	switch {
	case peerCert(in) == nil:
		stack[0] = peerNone
	case len(in.st.r.TLS.VerifiedChains) > 0:
		stack[0] = peerVerified
	default:
		stack[0] = peerUnverified
	}
}

func tlsPeerGet(ctx context.Context, mod api.Module, stack []uint64) {
	const fn = "sluice.tls_peer_get"
	in := mustRequest(ctx, fn)
	field := uint32(stack[0])
	if field > peerSHA256 {
		panic(guestErr(fn, "invalid field %d", field))
	}
	c := peerCert(in)
	buf := in.scratch[:0]
	count := 0
	add := func(s string) {
		buf = append(buf, s...)
		buf = append(buf, 0)
		count++
	}
	if c != nil {
		switch field {
		case peerSubject:
			add(c.Subject.String())
		case peerIssuer:
			add(c.Issuer.String())
		case peerDNSSANs:
			for _, n := range c.DNSNames {
				add(n)
			}
		case peerURISANs:
			for _, u := range c.URIs {
				add(u.String())
			}
		case peerSPIFFEID:
			for _, u := range c.URIs {
				if u.Scheme == "spiffe" {
					add(u.String())
					break
				}
			}
		case peerSHA256:
			sum := sha256.Sum256(c.Raw)
			buf = hex.AppendEncode(buf, sum[:])
			buf = append(buf, 0)
			count++
		}
	}
	in.scratch = buf
	n := writeBytes(mod, fn, uint32(stack[1]), uint32(stack[2]), buf)
	stack[0] = uint64(count)<<32 | uint64(n)
}

// tlsPeer writes every field of tls_peer_get at once: for each field in
// field order, a u32 little-endian count and that many NUL-terminated
// strings. It returns status << 32 | len (sdk/ABI.md, sluice.tls_peer).
// One call instead of seven is most of what a Go guest's peer lookup cost.
func tlsPeer(ctx context.Context, mod api.Module, stack []uint64) {
	const fn = "sluice.tls_peer"
	in := mustRequest(ctx, fn)
	var status uint64
	var b []byte
	if c := peerCert(in); c != nil {
		status = peerUnverified
		if len(in.st.r.TLS.VerifiedChains) > 0 {
			status = peerVerified
		}
		b = peerFields(c)
	}
	n := writeBytes(mod, fn, uint32(stack[0]), uint32(stack[1]), b)
	stack[0] = status<<32 | uint64(n)
}

// peerCache holds the encoded fields of recently seen leaf certificates,
// direct-mapped by the certificate's address: every request of a
// connection, and every filter of its chain, shares one *x509.Certificate,
// so the subject and issuer strings and the SHA-256 are computed once per
// connection rather than once per filter call. Entries are immutable; a
// slot is replaced, never modified.
var peerCache [64]atomic.Pointer[peerEntry]

type peerEntry struct {
	cert   *x509.Certificate
	fields []byte
}

// peerFields returns the tls_peer encoding of c's fields. The result is
// shared: callers must not modify it.
func peerFields(c *x509.Certificate) []byte {
	slot := &peerCache[(uintptr(unsafe.Pointer(c))>>6)%uintptr(len(peerCache))]
	if e := slot.Load(); e != nil && e.cert == c {
		return e.fields
	}
	var b []byte
	list := func(vs ...string) {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(vs)))
		for _, v := range vs {
			b = append(b, v...)
			b = append(b, 0)
		}
	}
	list(c.Subject.String())
	list(c.Issuer.String())
	list(c.DNSNames...)
	uris := make([]string, len(c.URIs))
	spiffe := []string(nil)
	for i, u := range c.URIs {
		uris[i] = u.String()
		if spiffe == nil && u.Scheme == "spiffe" {
			spiffe = uris[i : i+1]
		}
	}
	list(uris...)
	list(spiffe...)
	sum := sha256.Sum256(c.Raw)
	list(hex.EncodeToString(sum[:]))
	slot.Store(&peerEntry{cert: c, fields: b})
	return b
}

// routeKey is the request context key of WithRoute.
type routeKey struct{}

// WithRoute returns ctx carrying the identity of the route a request is
// served for, which guests read with sluice.route (sdk/ABI.md). The
// gateway sets it once per request, before the route's filter chain.
func WithRoute(ctx context.Context, route string) context.Context {
	return context.WithValue(ctx, routeKey{}, route)
}

// routeFn writes the route of WithRoute ("" when the request has none)
// and returns its length.
func routeFn(ctx context.Context, mod api.Module, stack []uint64) {
	const fn = "sluice.route"
	in := mustRequest(ctx, fn)
	route, _ := in.st.r.Context().Value(routeKey{}).(string)
	stack[0] = uint64(writeString(mod, fn, uint32(stack[0]), uint32(stack[1]), route))
}

// storeKey namespaces a guest key by filter so filters cannot touch each
// other's state.
func (in *instance) storeKey(fn string, mod api.Module, ptr, n uint32) string {
	const maxKey = 1024
	if n == 0 || n > maxKey {
		panic(guestErr(fn, "key length %d not in [1, %d]", n, maxKey))
	}
	k := read(mod, fn, "key", ptr, n)
	return in.f.name + "\x00" + string(k)
}

func rateTake(ctx context.Context, mod api.Module, stack []uint64) {
	const fn = "sluice.rate_take"
	in := mustRequest(ctx, fn)
	key := in.storeKey(fn, mod, uint32(stack[0]), uint32(stack[1]))
	rate, period, burst := int32(uint32(stack[2])), int32(uint32(stack[3])), int32(uint32(stack[4]))
	out := uint32(stack[5])
	if rate <= 0 || period <= 0 || burst <= 0 {
		panic(guestErr(fn, "rate %d, period_ms %d and burst %d must be positive", rate, period, burst))
	}
	dst := read(mod, fn, "out", out, 8)
	d, err := in.f.host.store.Take(in.st.r.Context(), key, Limit{
		Rate: int(rate), Period: time.Duration(period) * time.Millisecond, Burst: int(burst),
	})
	if err != nil {
		in.f.logger.Warn("store take failed", "key", key[len(in.f.name)+1:], "err", err)
		stack[0] = uint64(uint32(0xffffffff)) // -1
		return
	}
	binary.LittleEndian.PutUint32(dst[0:4], uint32(max(0, min(d.Remaining, 1<<31-1))))
	binary.LittleEndian.PutUint32(dst[4:8], uint32(min(d.RetryAfter.Milliseconds(), 1<<31-1)))
	if d.Allowed {
		stack[0] = 1
	} else {
		stack[0] = 0
	}
}

func counterAdd(ctx context.Context, mod api.Module, stack []uint64) {
	const fn = "sluice.counter_add"
	in := mustRequest(ctx, fn)
	key := in.storeKey(fn, mod, uint32(stack[0]), uint32(stack[1]))
	delta := int64(stack[2])
	dst := read(mod, fn, "out", uint32(stack[3]), 8)
	v, err := in.f.host.store.Add(in.st.r.Context(), key, delta)
	if err != nil {
		in.f.logger.Warn("store add failed", "key", key[len(in.f.name)+1:], "err", err)
		stack[0] = uint64(uint32(0xffffffff))
		return
	}
	binary.LittleEndian.PutUint64(dst, uint64(v))
	stack[0] = 0
}

func metricAdd(ctx context.Context, mod api.Module, stack []uint64) {
	const fn = "sluice.metric_add"
	in := mustInstance(ctx, fn)
	n := uint32(stack[1])
	if n == 0 || n > 64 {
		panic(guestErr(fn, "name length %d not in [1, 64]", n))
	}
	name := read(mod, fn, "name", uint32(stack[0]), n)
	for _, c := range name {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == ':') {
			panic(guestErr(fn, "invalid metric name %q: want [a-z0-9_:]", name))
		}
	}
	in.f.host.metrics.Add(in.f.name, string(name), int64(stack[2]))
}
