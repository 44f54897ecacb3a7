// Package abi is the SDK's thin layer over the host functions of sdk/ABI.md
// ("http_handler" and "sluice"), in terms of Go strings and slices. On
// GOOS=wasip1 each function calls the host import; in native builds each
// calls Host, which package sdktest sets, so the SDK's marshalling code is
// the same in both builds and is unit-tested natively.
package abi

// Header kinds, body kinds, features and log levels of the http-wasm ABI.
const (
	KindRequest         = 0
	KindResponse        = 1
	KindRequestTrailer  = 2
	KindResponseTrailer = 3
)

// Fields of sluice.tls_peer_get.
const (
	PeerSubject  = 0
	PeerIssuer   = 1
	PeerDNSSANs  = 2
	PeerURISANs  = 3
	PeerSPIFFEID = 4
	PeerSHA256   = 5
)

// Backend is what the native build calls instead of host imports. Each
// method has the ABI function's semantics (sdk/ABI.md): buffers are
// written only when the result fits, and the result's length (or
// count_len / eof_len) is returned either way. Implementations are called
// from one goroutine at a time, like a guest instance.
type Backend interface {
	EnableFeatures(features uint32) uint32
	GetConfig(buf []byte) uint32
	Log(level int32, msg string)
	LogEnabled(level int32) uint32
	GetMethod(buf []byte) uint32
	SetMethod(method string)
	GetURI(buf []byte) uint32
	SetURI(uri string)
	GetProtocolVersion(buf []byte) uint32
	GetSourceAddr(buf []byte) uint32
	GetHeaderNames(kind uint32, buf []byte) uint64
	GetHeaderValues(kind uint32, name string, buf []byte) uint64
	SetHeaderValue(kind uint32, name, value string)
	AddHeaderValue(kind uint32, name, value string)
	RemoveHeader(kind uint32, name string)
	ReadBody(kind uint32, buf []byte) uint64
	WriteBody(kind uint32, body []byte)
	GetStatusCode() uint32
	SetStatusCode(code uint32)

	TLSPeerStatus() uint32
	TLSPeerGet(field uint32, buf []byte) uint64
	TLSPeer(buf []byte) uint64
	Route(buf []byte) uint32
	RateTake(key string, rate, periodMS, burst uint32, out *[8]byte) int32
	CounterAdd(key string, delta int64, out *[8]byte) int32
	MetricAdd(name string, delta int64)
}
