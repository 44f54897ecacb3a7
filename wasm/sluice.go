package wasm

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"time"

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
