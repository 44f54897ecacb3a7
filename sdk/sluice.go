package sdk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"strconv"
	"time"

	"github.com/sluicegw/sluice/sdk/internal/abi"
)

// The functions of this file call Sluice's "sluice" import module. A guest
// that uses none of them imports only http_handler and runs on any
// http-wasm host.

// PeerStatus says whether the request's connection presented a client
// certificate and whether the gateway verified it.
type PeerStatus int

const (
	// PeerNone: no TLS, or the client sent no certificate.
	PeerNone PeerStatus = 0
	// PeerUnverified: a certificate the gateway did not verify (the
	// host's mTLS mode is optional_no_ca). Do not trust its fields.
	PeerUnverified PeerStatus = 1
	// PeerVerified: a certificate verified against the host's client CA.
	PeerVerified PeerStatus = 2
)

func (s PeerStatus) String() string {
	switch s {
	case PeerNone:
		return "none"
	case PeerUnverified:
		return "unverified"
	case PeerVerified:
		return "verified"
	}
	return "PeerStatus(" + strconv.Itoa(int(s)) + ")"
}

// Peer is the TLS client certificate of the request's connection (its
// leaf). Every field but Status is empty when Status is PeerNone.
type Peer struct {
	Status   PeerStatus
	Subject  string   // RFC 2253, e.g. "CN=web,O=Shop"
	Issuer   string   // same form
	DNSNames []string // DNS SANs
	URIs     []string // URI SANs
	SPIFFEID string   // the first URI SAN with scheme spiffe, if any
	SHA256   string   // SHA-256 of the certificate's DER, lowercase hex
}

// TLSPeerStatus returns the status of the client certificate alone (one
// host call).
func TLSPeerStatus() PeerStatus { return PeerStatus(abi.TLSPeerStatus()) }

// TLSPeer returns the client certificate's identity, in one host call
// (sluice.tls_peer).
func TLSPeer() Peer {
	r := abi.TLSPeer(scratch)
	if n := int(uint32(r)); n > len(scratch) {
		scratch = make([]byte, n)
		r = abi.TLSPeer(scratch)
	}
	p := Peer{Status: PeerStatus(r >> 32)}
	b := scratch[:uint32(r)]
	p.Subject, b = peerOne(b)
	p.Issuer, b = peerOne(b)
	p.DNSNames, b = peerList(b)
	p.URIs, b = peerList(b)
	p.SPIFFEID, b = peerOne(b)
	p.SHA256, _ = peerOne(b)
	return p
}

// peerList decodes one field of sluice.tls_peer from the front of b: a
// u32 little-endian count, then that many NUL-terminated strings. Input
// that ends early ends the field (and the ones after it) rather than
// panicking.
func peerList(b []byte) (vs []string, rest []byte) {
	if len(b) < 4 {
		return nil, nil
	}
	count := int(binary.LittleEndian.Uint32(b))
	b = b[4:]
	if count > 0 {
		vs = make([]string, 0, min(count, len(b))) // count comes from the host: do not trust it for sizing
	}
	for ; count > 0; count-- {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			return vs, nil
		}
		vs = append(vs, newString(b[:i]))
		b = b[i+1:]
	}
	return vs, b
}

// peerOne is peerList for a field of at most one value, without the
// slice.
func peerOne(b []byte) (v string, rest []byte) {
	if len(b) < 4 {
		return "", nil
	}
	count := binary.LittleEndian.Uint32(b)
	b = b[4:]
	for i := uint32(0); i < count; i++ {
		j := bytes.IndexByte(b, 0)
		if j < 0 {
			return v, nil
		}
		if i == 0 {
			v = newString(b[:j])
		}
		b = b[j+1:]
	}
	return v, b
}

// Route returns the identity of the route the request is served for, as
// "namespace/ingress host PathType path" (e.g. "default/web shop.example
// Prefix /cart"; a rule without a host has "*"), or "" when the host does
// not say (sluice.route).
func Route() string { return readString(abi.Route) }

// ErrUnavailable is returned by RateTake and CounterAdd when the host's
// store (e.g. Redis) cannot be reached. A filter decides whether that
// allows or denies the request.
var ErrUnavailable = errors.New("sluice: store unavailable")

// Limit is a token bucket: Rate tokens per Period, at most Burst stored.
type Limit struct {
	Rate   int
	Period time.Duration // whole milliseconds, at least 1 ms
	Burst  int
}

// Decision is the result of RateTake.
type Decision struct {
	Allowed    bool
	Remaining  int           // whole tokens left
	RetryAfter time.Duration // when denied: until one token is available
}

// RateTake takes one token from the bucket key (1–1024 bytes) with limit
// l. A bucket is identified by its key and its limit; a new one starts
// full. Buckets are scoped to the filter and shared by all its instances
// (and, with Redis configured, all gateway replicas). It returns an error
// for an invalid key or limit, and ErrUnavailable when the store failed.
func RateTake(key string, l Limit) (Decision, error) {
	ms := l.Period.Milliseconds()
	switch {
	case len(key) == 0 || len(key) > 1024:
		return Decision{}, keyError("rate", key)
	case l.Rate <= 0 || l.Rate > math.MaxInt32, l.Burst <= 0 || l.Burst > math.MaxInt32,
		ms <= 0 || ms > math.MaxInt32:
		return Decision{}, errors.New("sluice: rate key " + strconv.Quote(key) + ": limit " + strconv.Itoa(l.Rate) +
			" per " + l.Period.String() + " burst " + strconv.Itoa(l.Burst) +
			": want a positive 32-bit rate and burst and a period of at least 1ms")
	}
	var out [8]byte
	switch abi.RateTake(key, uint32(l.Rate), uint32(ms), uint32(l.Burst), &out) {
	case -1:
		return Decision{}, ErrUnavailable
	case 1:
		return Decision{Allowed: true, Remaining: int(binary.LittleEndian.Uint32(out[0:4]))}, nil
	}
	return Decision{
		Remaining:  int(binary.LittleEndian.Uint32(out[0:4])),
		RetryAfter: time.Duration(binary.LittleEndian.Uint32(out[4:8])) * time.Millisecond,
	}, nil
}

// CounterAdd atomically adds delta to the counter key (1–1024 bytes,
// created at 0, scoped to the filter) and returns its new value.
func CounterAdd(key string, delta int64) (int64, error) {
	if len(key) == 0 || len(key) > 1024 {
		return 0, keyError("counter", key)
	}
	var out [8]byte
	if abi.CounterAdd(key, delta, &out) != 0 {
		return 0, ErrUnavailable
	}
	return int64(binary.LittleEndian.Uint64(out[:])), nil
}

// MetricAdd adds delta to the filter's metric name (1–64 characters of
// [a-z0-9_:]); the gateway reports it with the filter's name attached.
func MetricAdd(name string, delta int64) error {
	if len(name) == 0 || len(name) > 64 {
		return errors.New("sluice: metric name " + strconv.Quote(name) + ": length " + strconv.Itoa(len(name)) + " not in [1, 64]")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == ':') {
			return errors.New("sluice: metric name " + strconv.Quote(name) + ": want [a-z0-9_:]")
		}
	}
	abi.MetricAdd(name, delta)
	return nil
}

// keyError is the error for a store key outside 1–1024 bytes. (The SDK
// avoids fmt: it would add ~400 KB to every guest.)
func keyError(what, key string) error {
	return errors.New("sluice: " + what + " key " + strconv.Quote(key) + ": length " + strconv.Itoa(len(key)) + " not in [1, 1024]")
}
