package wasm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// The http-wasm handler ABI ("http_handler" import module), implemented
// natively. See sdk/ABI.md and https://http-wasm.io/http-handler-abi/.
//
// Every host function validates every guest pointer and length before use.
// A bad argument panics with an *errGuest, which wazero recovers and
// returns from the guest call: the call traps, the host keeps running, and
// the instance is discarded.

const handlerModule = "http_handler"

const (
	headerKindRequest          = 0
	headerKindResponse         = 1
	headerKindRequestTrailers  = 2
	headerKindResponseTrailers = 3

	bodyKindRequest  = 0
	bodyKindResponse = 1
)

var (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

type hostFunc struct {
	name    string
	fn      api.GoModuleFunc
	params  []api.ValueType
	results []api.ValueType
}

// handlerFuncs is the http_handler module: name, implementation, signature.
var handlerFuncs = []hostFunc{
	{"enable_features", enableFeatures, []api.ValueType{i32}, []api.ValueType{i32}},
	{"get_config", getConfig, []api.ValueType{i32, i32}, []api.ValueType{i32}},
	{"log", logFn, []api.ValueType{i32, i32, i32}, nil},
	{"log_enabled", logEnabled, []api.ValueType{i32}, []api.ValueType{i32}},
	{"get_method", getMethod, []api.ValueType{i32, i32}, []api.ValueType{i32}},
	{"set_method", setMethod, []api.ValueType{i32, i32}, nil},
	{"get_uri", getURI, []api.ValueType{i32, i32}, []api.ValueType{i32}},
	{"set_uri", setURI, []api.ValueType{i32, i32}, nil},
	{"get_protocol_version", getProtocolVersion, []api.ValueType{i32, i32}, []api.ValueType{i32}},
	{"get_header_names", getHeaderNames, []api.ValueType{i32, i32, i32}, []api.ValueType{i64}},
	{"get_header_values", getHeaderValues, []api.ValueType{i32, i32, i32, i32, i32}, []api.ValueType{i64}},
	{"set_header_value", setHeaderValue, []api.ValueType{i32, i32, i32, i32, i32}, nil},
	{"add_header_value", addHeaderValue, []api.ValueType{i32, i32, i32, i32, i32}, nil},
	{"remove_header", removeHeader, []api.ValueType{i32, i32, i32}, nil},
	{"read_body", readBody, []api.ValueType{i32, i32, i32}, []api.ValueType{i64}},
	{"write_body", writeBody, []api.ValueType{i32, i32, i32}, nil},
	{"get_status_code", getStatusCode, nil, []api.ValueType{i32}},
	{"set_status_code", setStatusCode, []api.ValueType{i32}, nil},
	{"get_source_addr", getSourceAddr, []api.ValueType{i32, i32}, []api.ValueType{i32}},
}

func instantiateHostModule(ctx context.Context, rt wazero.Runtime, name string, funcs []hostFunc) error {
	b := rt.NewHostModuleBuilder(name)
	for _, f := range funcs {
		b.NewFunctionBuilder().WithGoModuleFunction(f.fn, f.params, f.results).Export(f.name)
	}
	if _, err := b.Instantiate(ctx); err != nil {
		return fmt.Errorf("host module %s: %w", name, err)
	}
	return nil
}

// --- helpers -------------------------------------------------------------

// mustInstance returns the calling instance; fn names the host function.
func mustInstance(ctx context.Context, fn string) *instance {
	in := instanceFrom(ctx)
	if in == nil {
		panic(guestErr(fn, "called outside a Sluice filter instance"))
	}
	return in
}

// mustRequest is mustInstance for functions that need a request in flight.
func mustRequest(ctx context.Context, fn string) *instance {
	in := mustInstance(ctx, fn)
	if in.st.r == nil {
		panic(guestErr(fn, "no request in flight (called during module start?)"))
	}
	return in
}

// read returns guest memory [ptr, ptr+n) or traps.
func read(mod api.Module, fn, what string, ptr, n uint32) []byte {
	mem := mod.Memory()
	if mem == nil {
		panic(guestErr(fn, "guest exports no memory"))
	}
	b, ok := mem.Read(ptr, n)
	if !ok {
		panic(guestErr(fn, "%s [%d, +%d) is outside guest memory (%d bytes)", what, ptr, n, mem.Size()))
	}
	return b
}

// writeString copies s to guest memory at buf if it fits in limit and
// returns len(s) either way.
func writeString(mod api.Module, fn string, buf, limit uint32, s string) uint32 {
	n := uint32(len(s))
	if n == 0 || n > limit {
		return n
	}
	copy(read(mod, fn, "buf", buf, n), s)
	return n
}

func writeBytes(mod api.Module, fn string, buf, limit uint32, b []byte) uint32 {
	n := uint32(len(b))
	if n == 0 || n > limit {
		return n
	}
	copy(read(mod, fn, "buf", buf, n), b)
	return n
}

// --- administrative ------------------------------------------------------

func enableFeatures(ctx context.Context, mod api.Module, stack []uint64) {
	in := mustInstance(ctx, "http_handler.enable_features")
	f := Features(uint32(stack[0])) & supportedFeatures
	if in.st.phase == phaseInit {
		in.base |= f
		stack[0] = uint64(in.base)
		return
	}
	in.st.features |= f
	stack[0] = uint64(in.st.features)
}

func getConfig(ctx context.Context, mod api.Module, stack []uint64) {
	in := mustInstance(ctx, "http_handler.get_config")
	stack[0] = uint64(writeBytes(mod, "http_handler.get_config", uint32(stack[0]), uint32(stack[1]), in.f.config))
}

func slogLevel(level int32) (slog.Level, bool) {
	switch {
	case level <= -1:
		return slog.LevelDebug, true
	case level == 0:
		return slog.LevelInfo, true
	case level == 1:
		return slog.LevelWarn, true
	case level == 2:
		return slog.LevelError, true
	}
	return 0, false // 3 = none
}

func logFn(ctx context.Context, mod api.Module, stack []uint64) {
	in := mustInstance(ctx, "http_handler.log")
	lvl, ok := slogLevel(int32(uint32(stack[0])))
	msg := read(mod, "http_handler.log", "message", uint32(stack[1]), uint32(stack[2]))
	if !ok || !in.f.logger.Enabled(context.Background(), lvl) {
		return
	}
	in.f.logger.Log(context.Background(), lvl, string(msg))
}

func logEnabled(ctx context.Context, mod api.Module, stack []uint64) {
	in := mustInstance(ctx, "http_handler.log_enabled")
	lvl, ok := slogLevel(int32(uint32(stack[0])))
	if ok && in.f.logger.Enabled(context.Background(), lvl) {
		stack[0] = 1
		return
	}
	stack[0] = 0
}

// --- request line ----------------------------------------------------------

func getMethod(ctx context.Context, mod api.Module, stack []uint64) {
	in := mustRequest(ctx, "http_handler.get_method")
	stack[0] = uint64(writeString(mod, "http_handler.get_method", uint32(stack[0]), uint32(stack[1]), in.request().Method))
}

func setMethod(ctx context.Context, mod api.Module, stack []uint64) {
	const fn = "http_handler.set_method"
	in := mustRequest(ctx, fn)
	b := read(mod, fn, "method", uint32(stack[0]), uint32(stack[1]))
	if in.st.phase != phaseRequest {
		panic(guestErr(fn, "only allowed in handle_request"))
	}
	if !validToken(b) {
		panic(guestErr(fn, "invalid method %q", b))
	}
	in.mutable().Method = string(b)
}

func getURI(ctx context.Context, mod api.Module, stack []uint64) {
	in := mustRequest(ctx, "http_handler.get_uri")
	stack[0] = uint64(writeString(mod, "http_handler.get_uri", uint32(stack[0]), uint32(stack[1]), requestURI(in.request())))
}

// requestURI is the origin-form URI: escaped path and raw query, "/" when
// empty.
func requestURI(r *http.Request) string {
	if r.URL == nil {
		return "/"
	}
	u := r.URL.EscapedPath()
	if u == "" {
		u = "/"
	}
	if r.URL.ForceQuery || r.URL.RawQuery != "" {
		u += "?" + r.URL.RawQuery
	}
	return u
}

func setURI(ctx context.Context, mod api.Module, stack []uint64) {
	const fn = "http_handler.set_uri"
	in := mustRequest(ctx, fn)
	b := read(mod, fn, "uri", uint32(stack[0]), uint32(stack[1]))
	if in.st.phase != phaseRequest {
		panic(guestErr(fn, "only allowed in handle_request"))
	}
	s := string(b)
	if s == "" {
		s = "/"
	}
	if s[0] != '/' {
		panic(guestErr(fn, "uri %q must start with '/'", s))
	}
	u, err := url.ParseRequestURI(s)
	if err != nil {
		panic(guestErr(fn, "invalid uri %q: %v", s, err))
	}
	o := in.mutable()
	if !in.st.urlOwned {
		c := new(url.URL)
		if o.URL != nil {
			*c = *o.URL
		}
		o.URL = c
		in.st.urlOwned = true
	}
	o.URL.Path, o.URL.RawPath, o.URL.RawQuery, o.URL.ForceQuery = u.Path, u.RawPath, u.RawQuery, u.ForceQuery
	o.URL.Opaque = ""
	o.RequestURI = s
}

func getProtocolVersion(ctx context.Context, mod api.Module, stack []uint64) {
	in := mustRequest(ctx, "http_handler.get_protocol_version")
	p := in.st.r.Proto
	if p == "" {
		p = "HTTP/1.1"
	}
	stack[0] = uint64(writeString(mod, "http_handler.get_protocol_version", uint32(stack[0]), uint32(stack[1]), p))
}

func getSourceAddr(ctx context.Context, mod api.Module, stack []uint64) {
	in := mustRequest(ctx, "http_handler.get_source_addr")
	stack[0] = uint64(writeString(mod, "http_handler.get_source_addr", uint32(stack[0]), uint32(stack[1]), in.st.r.RemoteAddr))
}

// --- headers -----------------------------------------------------------------

// headerFor returns the header map of kind for reading (nil if none).
// trailers=false kinds 2 and 3 read as empty unless FeatureTrailers is on.
func (in *instance) headerFor(fn string, kind uint32) http.Header {
	switch kind {
	case headerKindRequest:
		return in.request().Header
	case headerKindResponse:
		return in.st.w.Header()
	case headerKindRequestTrailers:
		if in.st.features&FeatureTrailers == 0 {
			return nil
		}
		return in.request().Trailer
	case headerKindResponseTrailers:
		if in.st.features&FeatureTrailers == 0 {
			return nil
		}
		return in.st.w.Header() // trailers live under http.TrailerPrefix
	}
	panic(guestErr(fn, "invalid header_kind %d", kind))
}

// canonicalKey writes the canonical form of name into in.scratch and
// returns it (valid until the next use of scratch). ok is false if name is
// not a valid header field name.
func (in *instance) canonicalKey(name []byte) ([]byte, bool) {
	if !validToken(name) {
		return nil, false
	}
	b := append(in.scratch[:0], name...)
	upper := true
	for i, c := range b {
		if upper && 'a' <= c && c <= 'z' {
			b[i] = c - ('a' - 'A')
		} else if !upper && 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
		upper = c == '-'
	}
	in.scratch = b
	return b, true
}

func isHost(name []byte) bool { return len(name) == 4 && strings.EqualFold(string(name), "host") }

func getHeaderNames(ctx context.Context, mod api.Module, stack []uint64) {
	const fn = "http_handler.get_header_names"
	in := mustRequest(ctx, fn)
	kind := uint32(stack[0])
	h := in.headerFor(fn, kind)
	keys := in.keys[:0]
	for k := range h {
		switch kind {
		case headerKindResponse:
			if strings.HasPrefix(k, http.TrailerPrefix) {
				continue
			}
		case headerKindResponseTrailers:
			if !strings.HasPrefix(k, http.TrailerPrefix) {
				continue
			}
			k = k[len(http.TrailerPrefix):]
		}
		keys = append(keys, k)
	}
	if kind == headerKindRequest && in.request().Host != "" {
		keys = append(keys, "Host")
	}
	slices.Sort(keys)
	in.keys = keys
	buf := in.scratch[:0]
	for _, k := range keys {
		for i := 0; i < len(k); i++ {
			c := k[i]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			buf = append(buf, c)
		}
		buf = append(buf, 0)
	}
	in.scratch = buf
	n := writeBytes(mod, fn, uint32(stack[1]), uint32(stack[2]), buf)
	stack[0] = uint64(len(keys))<<32 | uint64(n)
}

func getHeaderValues(ctx context.Context, mod api.Module, stack []uint64) {
	const fn = "http_handler.get_header_values"
	in := mustRequest(ctx, fn)
	kind := uint32(stack[0])
	name := read(mod, fn, "name", uint32(stack[1]), uint32(stack[2]))
	h := in.headerFor(fn, kind)
	var vals []string
	var host [1]string
	switch {
	case kind == headerKindRequest && isHost(name):
		if hv := in.request().Host; hv != "" {
			host[0] = hv
			vals = host[:]
		}
	case h != nil:
		key, ok := in.canonicalKey(name)
		if !ok {
			panic(guestErr(fn, "invalid header name %q", name))
		}
		if kind == headerKindResponseTrailers {
			vals = h[http.TrailerPrefix+string(key)]
		} else {
			vals = h[string(key)]
		}
	}
	size := 0
	for _, v := range vals {
		size += len(v) + 1
	}
	buf, limit := uint32(stack[3]), uint32(stack[4])
	if size > 0 && uint32(size) <= limit {
		dst := read(mod, fn, "buf", buf, uint32(size))
		off := 0
		for _, v := range vals {
			off += copy(dst[off:], v)
			dst[off] = 0
			off++
		}
	}
	stack[0] = uint64(len(vals))<<32 | uint64(size)
}

// headerWrite validates a header mutation and returns the map and key to
// change. value is nil for remove_header.
func (in *instance) headerWrite(fn string, mod api.Module, stack []uint64, withValue bool) (h http.Header, key, value string, host bool) {
	kind := uint32(stack[0])
	name := read(mod, fn, "name", uint32(stack[1]), uint32(stack[2]))
	var v []byte
	if withValue {
		v = read(mod, fn, "value", uint32(stack[3]), uint32(stack[4]))
		if !validValue(v) {
			panic(guestErr(fn, "invalid value %q for header %q", v, name))
		}
	}
	ck, ok := in.canonicalKey(name)
	if !ok {
		panic(guestErr(fn, "invalid header name %q", name))
	}
	key = string(ck)
	switch kind {
	case headerKindRequest:
		if in.st.phase != phaseRequest {
			panic(guestErr(fn, "request headers are read-only in handle_response"))
		}
		if key == "Host" {
			return nil, key, string(v), true
		}
		return in.mutableHeader(), key, string(v), false
	case headerKindResponse:
		return in.st.w.Header(), key, string(v), false
	case headerKindRequestTrailers, headerKindResponseTrailers:
		if in.st.features&FeatureTrailers == 0 {
			panic(guestErr(fn, "trailers need enable_features(trailers)"))
		}
		if kind == headerKindRequestTrailers {
			if in.st.phase != phaseRequest {
				panic(guestErr(fn, "request trailers are read-only in handle_response"))
			}
			return in.mutableTrailer(), key, string(v), false
		}
		return in.st.w.Header(), http.TrailerPrefix + key, string(v), false
	}
	panic(guestErr(fn, "invalid header_kind %d", kind))
}

func setHeaderValue(ctx context.Context, mod api.Module, stack []uint64) {
	const fn = "http_handler.set_header_value"
	in := mustRequest(ctx, fn)
	h, key, v, host := in.headerWrite(fn, mod, stack, true)
	if host {
		in.mutable().Host = v
		return
	}
	h[key] = []string{v}
}

func addHeaderValue(ctx context.Context, mod api.Module, stack []uint64) {
	const fn = "http_handler.add_header_value"
	in := mustRequest(ctx, fn)
	h, key, v, host := in.headerWrite(fn, mod, stack, true)
	if host {
		in.mutable().Host = v // a request has one Host
		return
	}
	h[key] = append(h[key], v)
}

func removeHeader(ctx context.Context, mod api.Module, stack []uint64) {
	const fn = "http_handler.remove_header"
	in := mustRequest(ctx, fn)
	h, key, _, host := in.headerWrite(fn, mod, stack, false)
	if host {
		in.mutable().Host = ""
		return
	}
	delete(h, key)
}

// --- bodies ------------------------------------------------------------------

func readBody(ctx context.Context, mod api.Module, stack []uint64) {
	const fn = "http_handler.read_body"
	in := mustRequest(ctx, fn)
	kind, buf, limit := uint32(stack[0]), uint32(stack[1]), uint32(stack[2])
	if limit == 0 {
		panic(guestErr(fn, "buf_limit must not be zero"))
	}
	dst := read(mod, fn, "buf", buf, limit)
	const eof = uint64(1) << 32
	switch kind {
	case bodyKindRequest:
		if in.st.phase != phaseRequest {
			stack[0] = eof
			return
		}
		if in.st.features&FeatureBufferRequest != 0 {
			in.loadRequestBody(fn)
			n := copy(dst, in.st.reqBody[in.st.reqOff:])
			in.st.reqOff += n
			res := uint64(n)
			if in.st.reqOff == len(in.st.reqBody) {
				res |= eof
			}
			stack[0] = res
			return
		}
		body := in.st.r.Body
		if in.st.reqEOF || body == nil || body == http.NoBody {
			stack[0] = eof
			return
		}
		n, err := io.ReadFull(body, dst)
		res := uint64(n)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				panic(guestErr(fn, "reading request body: %v", err))
			}
			in.st.reqEOF = true
			res |= eof
		}
		stack[0] = res
	case bodyKindResponse:
		if in.st.phase != phaseResponse || in.st.features&FeatureBufferResponse == 0 {
			stack[0] = eof
			return
		}
		n := copy(dst, in.rec.body[in.st.respOff:])
		in.st.respOff += n
		res := uint64(n)
		if in.st.respOff == len(in.rec.body) {
			res |= eof
		}
		stack[0] = res
	default:
		panic(guestErr(fn, "invalid body_kind %d", kind))
	}
}

// loadRequestBody buffers the whole request body (FeatureBufferRequest) and
// makes it readable again by the next handler.
func (in *instance) loadRequestBody(fn string) {
	if in.st.reqLoaded {
		return
	}
	in.st.reqLoaded = true
	r := in.st.r
	if r.Body == nil || r.Body == http.NoBody {
		return
	}
	limit := in.f.maxBody
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		panic(guestErr(fn, "reading request body: %v", err))
	}
	if int64(len(b)) > limit {
		panic(guestErr(fn, "request body exceeds %d bytes", limit))
	}
	in.st.reqBody = b
	if !in.st.reqWritten {
		o := in.mutable()
		o.Body = io.NopCloser(bytes.NewReader(b))
		o.ContentLength = int64(len(b))
	}
}

func writeBody(ctx context.Context, mod api.Module, stack []uint64) {
	const fn = "http_handler.write_body"
	in := mustRequest(ctx, fn)
	kind := uint32(stack[0])
	b := read(mod, fn, "body", uint32(stack[1]), uint32(stack[2]))
	switch kind {
	case bodyKindRequest:
		if in.st.phase != phaseRequest {
			panic(guestErr(fn, "the request body is read-only in handle_response"))
		}
		if int64(len(in.st.newReqBody)+len(b)) > in.f.maxBody {
			panic(guestErr(fn, "request body exceeds %d bytes", in.f.maxBody))
		}
		in.st.reqWritten = true
		in.st.newReqBody = append(in.st.newReqBody, b...)
	case bodyKindResponse:
		if in.st.phase == phaseRequest {
			if int64(len(in.st.body)+len(b)) > in.f.maxBody {
				panic(guestErr(fn, "response body exceeds %d bytes", in.f.maxBody))
			}
			in.st.body = append(in.st.body, b...)
			return
		}
		if in.st.features&FeatureBufferResponse != 0 {
			if !in.rec.rewritten {
				in.rec.rewritten = true
				in.rec.body = in.rec.body[:0]
			}
			if int64(len(in.rec.body)+len(b)) > in.f.maxBody {
				panic(guestErr(fn, "response body exceeds %d bytes", in.f.maxBody))
			}
			in.rec.body = append(in.rec.body, b...)
			return
		}
		// Not buffered: the response is streaming; append to it.
		_, _ = in.cw.Write(b)
	default:
		panic(guestErr(fn, "invalid body_kind %d", kind))
	}
}

// --- status ------------------------------------------------------------------

func getStatusCode(ctx context.Context, mod api.Module, stack []uint64) {
	in := mustRequest(ctx, "http_handler.get_status_code")
	switch {
	case in.st.phase == phaseRequest:
		stack[0] = uint64(in.st.status)
	case in.st.features&FeatureBufferResponse != 0:
		stack[0] = uint64(in.rec.code())
	case in.cw.wrote:
		stack[0] = uint64(in.cw.status)
	default:
		stack[0] = http.StatusOK
	}
}

func setStatusCode(ctx context.Context, mod api.Module, stack []uint64) {
	const fn = "http_handler.set_status_code"
	in := mustRequest(ctx, fn)
	code := int32(uint32(stack[0]))
	if code < 100 || code > 999 {
		panic(guestErr(fn, "invalid status code %d", code))
	}
	switch {
	case in.st.phase == phaseRequest:
		in.st.status = int(code)
	case in.st.features&FeatureBufferResponse != 0:
		in.rec.status, in.rec.wrote = int(code), true
	default:
		// The response is streaming and its status line is already sent
		// (or will be sent by the next handler): no effect, as documented.
	}
}

// --- validation ----------------------------------------------------------------

// validToken reports whether b is an RFC 9110 token (method, header name).
func validToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c >= 0x80 || !tchar[c] {
			return false
		}
	}
	return true
}

var tchar = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// validValue reports whether b is a valid field value: no CTLs except tab.
func validValue(b []byte) bool {
	for _, c := range b {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

func itoa(n int) string { return strconv.Itoa(n) }
