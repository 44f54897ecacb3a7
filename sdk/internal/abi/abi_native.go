//go:build !wasip1

package abi

// Host receives every call in native builds. Package sdktest sets it for
// the duration of one simulated request; a call with no Host panics with
// a message saying so (a programming error in a test, not an input).
var Host Backend

func host() Backend {
	if Host == nil {
		panic("sluice sdk: no host: outside wasm, run the filter through sdk/sdktest")
	}
	return Host
}

// InitFeatures are the features enabled while no Host is set (from a
// filter's init functions): sdktest starts every request with them, as
// the real host does with features enabled during _initialize.
var InitFeatures uint32

// EnableFeatures, outside a simulated request, records init features.
func EnableFeatures(f uint32) uint32 {
	if Host == nil {
		InitFeatures |= f & 7
		return InitFeatures
	}
	return Host.EnableFeatures(f)
}

// Log, outside a simulated request, is dropped.
func Log(level int32, msg string) {
	if Host != nil {
		Host.Log(level, msg)
	}
}

func GetConfig(buf []byte) uint32          { return host().GetConfig(buf) }
func LogEnabled(level int32) uint32        { return host().LogEnabled(level) }
func GetMethod(buf []byte) uint32          { return host().GetMethod(buf) }
func SetMethod(m string)                   { host().SetMethod(m) }
func GetURI(buf []byte) uint32             { return host().GetURI(buf) }
func SetURI(u string)                      { host().SetURI(u) }
func GetProtocolVersion(buf []byte) uint32 { return host().GetProtocolVersion(buf) }
func GetSourceAddr(buf []byte) uint32      { return host().GetSourceAddr(buf) }
func GetHeaderNames(kind uint32, buf []byte) uint64 {
	return host().GetHeaderNames(kind, buf)
}
func GetHeaderValues(kind uint32, name string, buf []byte) uint64 {
	return host().GetHeaderValues(kind, name, buf)
}
func SetHeaderValue(kind uint32, name, value string) { host().SetHeaderValue(kind, name, value) }
func AddHeaderValue(kind uint32, name, value string) { host().AddHeaderValue(kind, name, value) }
func RemoveHeader(kind uint32, name string)          { host().RemoveHeader(kind, name) }
func ReadBody(kind uint32, buf []byte) uint64        { return host().ReadBody(kind, buf) }
func WriteBody(kind uint32, body []byte)             { host().WriteBody(kind, body) }
func GetStatusCode() uint32                          { return host().GetStatusCode() }
func SetStatusCode(code uint32)                      { host().SetStatusCode(code) }
func TLSPeerStatus() uint32                          { return host().TLSPeerStatus() }
func TLSPeerGet(field uint32, buf []byte) uint64     { return host().TLSPeerGet(field, buf) }
func TLSPeer(buf []byte) uint64                      { return host().TLSPeer(buf) }
func Route(buf []byte) uint32                        { return host().Route(buf) }
func RateTake(key string, rate, periodMS, burst uint32, out *[8]byte) int32 {
	return host().RateTake(key, rate, periodMS, burst, out)
}
func CounterAdd(key string, delta int64, out *[8]byte) int32 {
	return host().CounterAdd(key, delta, out)
}
func MetricAdd(name string, delta int64) { host().MetricAdd(name, delta) }
