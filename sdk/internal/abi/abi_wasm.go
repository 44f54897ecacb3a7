//go:build wasip1

package abi

import "unsafe"

func ptr(b []byte) unsafe.Pointer      { return unsafe.Pointer(unsafe.SliceData(b)) }
func sptr(s string) unsafe.Pointer     { return unsafe.Pointer(unsafe.StringData(s)) }
func ln[T []byte | string](b T) uint32 { return uint32(len(b)) }

//go:wasmimport http_handler enable_features
func enableFeatures(features uint32) uint32

//go:wasmimport http_handler get_config
func getConfig(buf unsafe.Pointer, limit uint32) uint32

//go:wasmimport http_handler log
func log(level int32, msg unsafe.Pointer, n uint32)

//go:wasmimport http_handler log_enabled
func logEnabled(level int32) uint32

//go:wasmimport http_handler get_method
func getMethod(buf unsafe.Pointer, limit uint32) uint32

//go:wasmimport http_handler set_method
func setMethod(p unsafe.Pointer, n uint32)

//go:wasmimport http_handler get_uri
func getURI(buf unsafe.Pointer, limit uint32) uint32

//go:wasmimport http_handler set_uri
func setURI(p unsafe.Pointer, n uint32)

//go:wasmimport http_handler get_protocol_version
func getProtocolVersion(buf unsafe.Pointer, limit uint32) uint32

//go:wasmimport http_handler get_source_addr
func getSourceAddr(buf unsafe.Pointer, limit uint32) uint32

//go:wasmimport http_handler get_header_names
func getHeaderNames(kind uint32, buf unsafe.Pointer, limit uint32) uint64

//go:wasmimport http_handler get_header_values
func getHeaderValues(kind uint32, name unsafe.Pointer, nameLen uint32, buf unsafe.Pointer, limit uint32) uint64

//go:wasmimport http_handler set_header_value
func setHeaderValue(kind uint32, name unsafe.Pointer, nameLen uint32, value unsafe.Pointer, valueLen uint32)

//go:wasmimport http_handler add_header_value
func addHeaderValue(kind uint32, name unsafe.Pointer, nameLen uint32, value unsafe.Pointer, valueLen uint32)

//go:wasmimport http_handler remove_header
func removeHeader(kind uint32, name unsafe.Pointer, nameLen uint32)

//go:wasmimport http_handler read_body
func readBody(kind uint32, buf unsafe.Pointer, limit uint32) uint64

//go:wasmimport http_handler write_body
func writeBody(kind uint32, body unsafe.Pointer, n uint32)

//go:wasmimport http_handler get_status_code
func getStatusCode() uint32

//go:wasmimport http_handler set_status_code
func setStatusCode(code uint32)

//go:wasmimport sluice tls_peer_status
func tlsPeerStatus() uint32

//go:wasmimport sluice tls_peer_get
func tlsPeerGet(field uint32, buf unsafe.Pointer, limit uint32) uint64

//go:wasmimport sluice tls_peer
func tlsPeer(buf unsafe.Pointer, limit uint32) uint64

//go:wasmimport sluice route
func route(buf unsafe.Pointer, limit uint32) uint32

//go:wasmimport sluice rate_take
func rateTake(key unsafe.Pointer, keyLen, rate, periodMS, burst uint32, out unsafe.Pointer) int32

//go:wasmimport sluice counter_add
func counterAdd(key unsafe.Pointer, keyLen uint32, delta int64, out unsafe.Pointer) int32

//go:wasmimport sluice metric_add
func metricAdd(name unsafe.Pointer, nameLen uint32, delta int64)

// The exported wrappers. Go keeps every argument alive across the import
// call (the wasm stack holds the pointers), and its GC does not move heap
// objects, so passing pointers into Go memory is safe.

func EnableFeatures(f uint32) uint32       { return enableFeatures(f) }
func GetConfig(buf []byte) uint32          { return getConfig(ptr(buf), ln(buf)) }
func Log(level int32, msg string)          { log(level, sptr(msg), ln(msg)) }
func LogEnabled(level int32) uint32        { return logEnabled(level) }
func GetMethod(buf []byte) uint32          { return getMethod(ptr(buf), ln(buf)) }
func SetMethod(m string)                   { setMethod(sptr(m), ln(m)) }
func GetURI(buf []byte) uint32             { return getURI(ptr(buf), ln(buf)) }
func SetURI(u string)                      { setURI(sptr(u), ln(u)) }
func GetProtocolVersion(buf []byte) uint32 { return getProtocolVersion(ptr(buf), ln(buf)) }
func GetSourceAddr(buf []byte) uint32      { return getSourceAddr(ptr(buf), ln(buf)) }
func GetHeaderNames(kind uint32, buf []byte) uint64 {
	return getHeaderNames(kind, ptr(buf), ln(buf))
}
func GetHeaderValues(kind uint32, name string, buf []byte) uint64 {
	return getHeaderValues(kind, sptr(name), ln(name), ptr(buf), ln(buf))
}
func SetHeaderValue(kind uint32, name, value string) {
	setHeaderValue(kind, sptr(name), ln(name), sptr(value), ln(value))
}
func AddHeaderValue(kind uint32, name, value string) {
	addHeaderValue(kind, sptr(name), ln(name), sptr(value), ln(value))
}
func RemoveHeader(kind uint32, name string)      { removeHeader(kind, sptr(name), ln(name)) }
func ReadBody(kind uint32, buf []byte) uint64    { return readBody(kind, ptr(buf), ln(buf)) }
func WriteBody(kind uint32, body []byte)         { writeBody(kind, ptr(body), ln(body)) }
func GetStatusCode() uint32                      { return getStatusCode() }
func SetStatusCode(code uint32)                  { setStatusCode(code) }
func TLSPeerStatus() uint32                      { return tlsPeerStatus() }
func TLSPeerGet(field uint32, buf []byte) uint64 { return tlsPeerGet(field, ptr(buf), ln(buf)) }
func TLSPeer(buf []byte) uint64                  { return tlsPeer(ptr(buf), ln(buf)) }
func Route(buf []byte) uint32                    { return route(ptr(buf), ln(buf)) }
func RateTake(key string, rate, periodMS, burst uint32, out *[8]byte) int32 {
	return rateTake(sptr(key), ln(key), rate, periodMS, burst, unsafe.Pointer(out))
}
func CounterAdd(key string, delta int64, out *[8]byte) int32 {
	return counterAdd(sptr(key), ln(key), delta, unsafe.Pointer(out))
}
func MetricAdd(name string, delta int64) { metricAdd(sptr(name), ln(name), delta) }
