//go:build !wasip1

package sdktest

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"net/url"
	"time"

	"github.com/sluicegw/sluice/sdk/internal/abi"
)

func (ex *exchange) peer() *x509.Certificate {
	if t := ex.req.TLS; t != nil && len(t.PeerCertificates) > 0 {
		return t.PeerCertificates[0]
	}
	return nil
}

func (ex *exchange) TLSPeerStatus() uint32 {
	switch {
	case ex.peer() == nil:
		return 0
	case len(ex.req.TLS.VerifiedChains) > 0:
		return 2
	}
	return 1
}

func (ex *exchange) TLSPeerGet(field uint32, buf []byte) uint64 {
	c := ex.peer()
	var vs []string
	if field > abi.PeerSHA256 {
		trapf("sluice.tls_peer_get: invalid field %d", field)
	}
	if c != nil {
		switch field {
		case abi.PeerSubject:
			vs = []string{c.Subject.String()}
		case abi.PeerIssuer:
			vs = []string{c.Issuer.String()}
		case abi.PeerDNSSANs:
			vs = c.DNSNames
		case abi.PeerURISANs:
			for _, u := range c.URIs {
				vs = append(vs, u.String())
			}
		case abi.PeerSPIFFEID:
			for _, u := range c.URIs {
				if u.Scheme == "spiffe" {
					vs = []string{u.String()}
					break
				}
			}
		case abi.PeerSHA256:
			sum := sha256.Sum256(c.Raw)
			vs = []string{hex.EncodeToString(sum[:])}
		}
	}
	return putList(buf, vs)
}

// TLSPeer is TLSPeerGet of every field, in the encoding of sluice.tls_peer:
// per field a u32 little-endian count and the NUL-terminated strings.
func (ex *exchange) TLSPeer(buf []byte) uint64 {
	status := ex.TLSPeerStatus()
	if status == 0 {
		return 0
	}
	var b []byte
	for f := uint32(abi.PeerSubject); f <= abi.PeerSHA256; f++ {
		r := ex.TLSPeerGet(f, nil)
		list := make([]byte, uint32(r))
		ex.TLSPeerGet(f, list)
		b = binary.LittleEndian.AppendUint32(b, uint32(r>>32))
		b = append(b, list...)
	}
	return uint64(status)<<32 | uint64(put(buf, string(b)))
}

// Route returns Options.Route.
func (ex *exchange) Route(buf []byte) uint32 { return put(buf, ex.h.opts.Route) }

// bucket is a token bucket, as the real host's memory store keeps them.
type bucket struct {
	tokens float64
	last   time.Time
}

func (ex *exchange) RateTake(key string, rate, periodMS, burst uint32, out *[8]byte) int32 {
	if len(key) == 0 || len(key) > 1024 {
		trapf("sluice.rate_take: key length %d not in [1, 1024]", len(key))
	}
	if int32(rate) <= 0 || int32(periodMS) <= 0 || int32(burst) <= 0 {
		trapf("sluice.rate_take: rate %d, period_ms %d and burst %d must be positive", int32(rate), int32(periodMS), int32(burst))
	}
	if ex.h.opts.StoreDown {
		return -1
	}
	h := ex.h
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.opts.Now()
	id := fmt.Sprintf("%s\x00%d/%d/%d", key, rate, periodMS, burst)
	b := h.buckets[id]
	if b == nil {
		b = &bucket{tokens: float64(burst), last: now}
		h.buckets[id] = b
	}
	perMS := float64(rate) / float64(periodMS)
	if el := now.Sub(b.last); el > 0 {
		b.tokens = math.Min(float64(burst), b.tokens+perMS*float64(el.Milliseconds()))
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		binary.LittleEndian.PutUint32(out[0:4], uint32(b.tokens))
		binary.LittleEndian.PutUint32(out[4:8], 0)
		return 1
	}
	binary.LittleEndian.PutUint32(out[0:4], 0)
	binary.LittleEndian.PutUint32(out[4:8], uint32(math.Ceil((1-b.tokens)/perMS)))
	return 0
}

func (ex *exchange) CounterAdd(key string, delta int64, out *[8]byte) int32 {
	if len(key) == 0 || len(key) > 1024 {
		trapf("sluice.counter_add: key length %d not in [1, 1024]", len(key))
	}
	if ex.h.opts.StoreDown {
		return -1
	}
	h := ex.h
	h.mu.Lock()
	defer h.mu.Unlock()
	h.counters[key] += delta
	binary.LittleEndian.PutUint64(out[:], uint64(h.counters[key]))
	return 0
}

func (ex *exchange) MetricAdd(name string, delta int64) {
	if len(name) == 0 || len(name) > 64 {
		trapf("sluice.metric_add: name length %d not in [1, 64]", len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == ':') {
			trapf("sluice.metric_add: invalid metric name %q: want [a-z0-9_:]", name)
		}
	}
	ex.h.mu.Lock()
	ex.h.metrics[name] += delta
	ex.h.mu.Unlock()
}

func setEscapedPath(u *url.URL, escaped string) error {
	p, err := url.PathUnescape(escaped)
	if err != nil {
		return err
	}
	u.Path, u.RawPath = p, ""
	if escaped != u.EscapedPath() {
		u.RawPath = escaped
	}
	return nil
}
