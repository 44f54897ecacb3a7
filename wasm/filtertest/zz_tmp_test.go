package filtertest_test

import (
	"net/http"
	"testing"
)

func BenchmarkTmp(b *testing.B) {
	for _, p := range []string{"/tmp/goraw.wasm", "/tmp/gh-noalloc.wasm"} {
		b.Run(p, func(b *testing.B) {
			handler := newBenchFilter(b, p, nil).filter.Middleware(ok)
			w, r := &benchWriter{h: http.Header{}}, benchRequest()
			for b.Loop() {
				handler.ServeHTTP(w, r)
			}
		})
	}
}
