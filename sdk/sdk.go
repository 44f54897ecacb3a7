// Package sdk is the Go SDK for Sluice filters: WebAssembly guests built
// with standard Go (GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared)
// that run on a route of the Sluice gateway. sdk/ABI.md is the contract
// this package implements; README.md walks through writing a filter.
//
// A filter registers its Handler from an init function (a reactor's main
// is never called):
//
//	func init() { sdk.Handle(filter{}) }
//
//	type filter struct{}
//
//	func (filter) HandleRequest(req sdk.Request, resp sdk.Response) (next bool) {
//		if req.Header().Get("X-Token") == "" {
//			resp.SetStatusCode(401)
//			resp.Body().WriteString("token required\n")
//			return false // answered: the upstream is not called
//		}
//		req.Header().Set("X-Checked", "1")
//		return true // continue to the upstream
//	}
//
//	func main() {}
//
// The same code compiles natively: every call then goes to the simulated
// host of package sdktest, so a filter's logic is unit-tested with plain
// go test.
//
// # Concurrency
//
// A filter instance handles one request at a time, from HandleRequest to
// HandleResponse: a Handler may keep per-request state in its own fields
// between the two. Instances are reused and there are several per filter,
// so state kept across requests is per instance, never global; use
// CounterAdd and RateTake for shared state. Goroutines only run while a
// call is in progress and stall when it returns: a filter must not start
// any (the SDK logs a warning once if the count grows).
//
// # Failures
//
// Invalid arguments to the host (a header name that is not a token, a
// status outside 100–999, a URI not starting with "/") and panics trap the
// call: the host discards the instance and applies the filter's failure
// policy (500 by default). Functions that can fail for reasons outside the
// filter's control return an error instead.
package sdk

import (
	"io"
	"unsafe"

	"github.com/sluicegw/sluice/sdk/internal/abi"
)

// Handler handles the request phase of a filter.
//
// HandleRequest is called once per request, before the upstream. It
// returns next = true to send the request (with its changes) on to the
// rest of the chain and the upstream, or false when resp holds the answer
// (status, default 200, headers and body): the upstream is then not
// called and HandleResponse is not either.
type Handler interface {
	HandleRequest(req Request, resp Response) (next bool)
}

// ResponseHandler is implemented by Handlers that also want the response
// phase: HandleResponse is called after the upstream answered, on the same
// instance, when HandleRequest returned true. isError is true when the
// host failed to get a response (the status is then the host's).
//
// Response headers, status and body can be changed here only when
// FeatureBufferResponse is enabled; without it they may already be sent.
type ResponseHandler interface {
	HandleResponse(req Request, resp Response, isError bool)
}

// Handle registers the filter's Handler. Call it from an init function of
// package main. Only the last registration counts.
func Handle(h Handler) {
	registered = h
	registeredResp, _ = h.(ResponseHandler)
}

var (
	registered     Handler
	registeredResp ResponseHandler
)

// Features are the http-wasm feature flags.
type Features uint32

const (
	// FeatureBufferRequest buffers the request body, so that reading it
	// does not consume it for the upstream.
	FeatureBufferRequest Features = 1 << 0
	// FeatureBufferResponse buffers the upstream's response so that
	// HandleResponse can read and replace its body, status and headers.
	FeatureBufferResponse Features = 1 << 1
	// FeatureTrailers enables reading and writing trailers.
	FeatureTrailers Features = 1 << 2
)

// EnableFeatures enables features and returns the enabled set. Called from
// init, it applies to every request of the instance; called while
// handling a request, to that request only.
func EnableFeatures(f Features) Features { return Features(abi.EnableFeatures(uint32(f))) }

// Config returns the filter's per-route configuration: the route's
// "config" value as JSON (empty when there is none).
func Config() []byte { return readBytes(abi.GetConfig) }

// LogLevel is the level of a log message.
type LogLevel int32

const (
	LogDebug LogLevel = -1
	LogInfo  LogLevel = 0
	LogWarn  LogLevel = 1
	LogError LogLevel = 2
	LogNone  LogLevel = 3
)

// Log writes msg to the gateway's log, tagged with the filter's name.
func Log(level LogLevel, msg string) { abi.Log(int32(level), msg) }

// LogEnabled reports whether messages of level would be logged: use it to
// skip building expensive messages.
func LogEnabled(level LogLevel) bool { return abi.LogEnabled(int32(level)) == 1 }

// Request is the request being filtered. Its zero value is the current
// request; it is only valid during a call from the host.
type Request struct{}

// Method returns the request method, e.g. "GET".
func (Request) Method() string { return readString(abi.GetMethod) }

// SetMethod replaces the method (a token). Request phase only.
func (Request) SetMethod(method string) { abi.SetMethod(method) }

// URI returns the request URI in origin form: escaped path and raw query,
// e.g. "/search?q=a%26b".
func (Request) URI() string { return readString(abi.GetURI) }

// SetURI replaces path and query; uri must start with "/". Request phase
// only.
func (Request) SetURI(uri string) { abi.SetURI(uri) }

// ProtocolVersion returns "HTTP/1.1" or "HTTP/2.0".
func (Request) ProtocolVersion() string { return readString(abi.GetProtocolVersion) }

// SourceAddr returns the client's address, "IP:port".
func (Request) SourceAddr() string { return readString(abi.GetSourceAddr) }

// Header returns the request headers (read-only in the response phase).
// The name "host" reads and writes the request's Host.
func (Request) Header() Header { return Header{abi.KindRequest} }

// Trailer returns the request trailers (needs FeatureTrailers).
func (Request) Trailer() Header { return Header{abi.KindRequestTrailer} }

// Body returns the request body. Reading it consumes it unless
// FeatureBufferRequest is enabled; the first Write replaces it.
func (Request) Body() Body { return Body{abi.KindRequest} }

// Response is the response: the filter's own answer in the request phase,
// the upstream's in the response phase. Its zero value is the current
// response.
type Response struct{}

// StatusCode returns the status: the filter's own (200 unless set) in the
// request phase, the upstream's in the response phase.
func (Response) StatusCode() int { return int(abi.GetStatusCode()) }

// SetStatusCode sets the status, 100–999. In the response phase it needs
// FeatureBufferResponse.
func (Response) SetStatusCode(code int) { abi.SetStatusCode(uint32(code)) }

// Header returns the response headers. Set in the request phase they are
// part of the response whatever produces it.
func (Response) Header() Header { return Header{abi.KindResponse} }

// Trailer returns the response trailers (needs FeatureTrailers).
func (Response) Trailer() Header { return Header{abi.KindResponseTrailer} }

// Body returns the response body: in the request phase the body of the
// filter's own answer; in the response phase the upstream's, readable and
// replaceable with FeatureBufferResponse.
func (Response) Body() Body { return Body{abi.KindResponse} }

// Header is a set of request or response headers or trailers. Names are
// case-insensitive.
type Header struct{ kind uint32 }

// Get returns the first value of name, or "" if there is none.
func (h Header) Get(name string) string {
	// readList by hand: this is the hottest call of most filters.
	r := abi.GetHeaderValues(h.kind, name, scratch)
	if n := int(uint32(r)); n > len(scratch) {
		scratch = make([]byte, n)
		r = abi.GetHeaderValues(h.kind, name, scratch)
	}
	count, b := r>>32, scratch[:uint32(r)]
	if count == 0 {
		return ""
	}
	if count == 1 && len(b) > 0 {
		return newString(b[:len(b)-1]) // one value: its NUL ends the data
	}
	for i, c := range b {
		if c == 0 {
			return newString(b[:i])
		}
	}
	return newString(b)
}

// Values returns every value of name.
func (h Header) Values(name string) []string {
	return split(readList(func(buf []byte) uint64 { return abi.GetHeaderValues(h.kind, name, buf) }))
}

// Names returns the header names, lowercase and sorted.
func (h Header) Names() []string {
	return split(readList(func(buf []byte) uint64 { return abi.GetHeaderNames(h.kind, buf) }))
}

// Set replaces the values of name with value.
func (h Header) Set(name, value string) { abi.SetHeaderValue(h.kind, name, value) }

// Add adds value to name.
func (h Header) Add(name, value string) { abi.AddHeaderValue(h.kind, name, value) }

// Del removes every value of name.
func (h Header) Del(name string) { abi.RemoveHeader(h.kind, name) }

// Body is a request or response body: an io.Reader and an io.Writer.
type Body struct{ kind uint32 }

// Read reads the next bytes of the body; it returns io.EOF at the end.
func (b Body) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r := abi.ReadBody(b.kind, p)
	n := int(uint32(r))
	if r>>32 == 1 {
		return n, io.EOF
	}
	return n, nil
}

// Write writes p to the body (see Request.Body and Response.Body for
// whether it replaces or appends). It never fails.
func (b Body) Write(p []byte) (int, error) {
	abi.WriteBody(b.kind, p)
	return len(p), nil
}

// WriteString writes s like Write.
func (b Body) WriteString(s string) (int, error) { return b.Write([]byte(s)) }

// ReadAll reads the body to its end.
func (b Body) ReadAll() ([]byte, error) { return io.ReadAll(b) }

var (
	_ io.Reader       = Body{}
	_ io.Writer       = Body{}
	_ io.StringWriter = Body{}
)

// scratch is the buffer results are read into; one instance runs one call
// at a time, so one buffer suffices. It grows to the largest result seen.
var scratch = make([]byte, 2048)

// fit calls fn with scratch and, if the result did not fit, again with a
// buffer large enough. n is the result's length.
func fit(fn func([]byte) uint32) []byte {
	n := fn(scratch)
	if int(n) > len(scratch) {
		scratch = make([]byte, n)
		n = fn(scratch)
	}
	return scratch[:n]
}

func readString(fn func([]byte) uint32) string { return newString(fit(fn)) }

func readBytes(fn func([]byte) uint32) []byte { return append([]byte(nil), fit(fn)...) }

// readList reads a count_len result: count strings, NUL-terminated.
func readList(fn func([]byte) uint64) (int, []byte) {
	r := fn(scratch)
	if n := int(uint32(r)); n > len(scratch) {
		scratch = make([]byte, n)
		r = fn(scratch)
	}
	return int(r >> 32), scratch[:uint32(r)]
}

func split(count int, b []byte) []string {
	if count == 0 {
		return nil
	}
	out := make([]string, 0, min(count, len(b))) // count comes from the host: do not trust it for sizing
	start := 0
	for i, c := range b {
		if c == 0 {
			out = append(out, newString(b[start:i]))
			start = i + 1
		}
	}
	return out
}

// Strings the SDK returns are carved from chunks of arenaChunk bytes
// instead of allocated one by one: a Go allocation costs the guest about
// 0.7 µs, most of a header read (RATIONALE.md, "Why a string
// arena?"). Bytes handed out are never written again, so the strings are
// ordinary immutable strings; a string kept alive keeps its chunk alive.
const (
	arenaChunk = 4096
	arenaMax   = 256 // longer strings get their own allocation
)

var arena []byte

func newString(b []byte) string {
	switch {
	case len(b) == 0:
		return ""
	case len(b) > arenaMax:
		return string(b)
	}
	if cap(arena)-len(arena) < len(b) {
		arena = make([]byte, 0, arenaChunk)
	}
	start := len(arena)
	arena = append(arena, b...)
	return unsafe.String(&arena[start], len(b))
}
