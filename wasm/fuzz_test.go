package wasm

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzHostFunctions calls every host function (http_handler and sluice)
// with arbitrary arguments, guest memory contents, phases and features. A
// call may only return or trap with a guest error: any other panic (index
// out of range, nil dereference, ...) fails.
func FuzzHostFunctions(f *testing.F) {
	all := append(append([]hostFunc(nil), handlerFuncs...), sluiceFuncs...)
	f.Add(uint8(0), uint8(0), []byte("x-a"), []byte{})
	for i := range all {
		args := make([]byte, 48)
		binary.LittleEndian.PutUint32(args[0:], 1)
		binary.LittleEndian.PutUint32(args[8:], 0)
		binary.LittleEndian.PutUint32(args[16:], 3)
		binary.LittleEndian.PutUint32(args[24:], 100)
		binary.LittleEndian.PutUint32(args[32:], 100)
		f.Add(uint8(i), uint8(7), []byte("x-a\x00value"), args)
		binary.LittleEndian.PutUint32(args[8:], 0xfffffff0)
		f.Add(uint8(i), uint8(0x80|3), []byte("Host"), args)
	}
	fx := newFixture(f)
	f.Fuzz(func(t *testing.T, fn, mode uint8, mem []byte, args []byte) {
		hf := all[int(fn)%len(all)]
		r := httptest.NewRequest(http.MethodPost, "/p?q", strings.NewReader("body bytes"))
		r.Header.Set("X-A", "1")
		r.Trailer = http.Header{"T": {"v"}}
		if mode&0x40 != 0 {
			r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{Raw: []byte{1, 2}}}}
		}
		fx.begin(r)
		fx.in.st.features = Features(mode) & supportedFeatures
		if mode&0x80 != 0 {
			fx.in.st.phase = phaseResponse
			fx.in.rec = recorder{w: fx.rec, body: []byte("upstream")}
			fx.in.cw = captureWriter{w: fx.rec}
		}
		if len(mem) > 1024 {
			mem = mem[:1024]
		}
		fx.in.mem.Write(0, mem)
		stack := make([]uint64, max(len(hf.params), len(hf.results)))
		for i := range hf.params {
			var v uint64
			if len(args) >= 8*(i+1) {
				v = binary.LittleEndian.Uint64(args[8*i:])
			}
			if hf.params[i] == i32 {
				v = uint64(uint32(v))
			}
			stack[i] = v
		}
		func() {
			defer func() {
				if rec := recover(); rec != nil {
					if _, ok := rec.(*errGuest); !ok {
						t.Fatalf("%s(%v) panicked with %T: %v", hf.name, stack, rec, rec)
					}
				}
			}()
			hf.fn(fx.in, fx.in.mod, stack)
		}()
		fx.in.end()
	})
}
