package wasm

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestRequestBodyBufferedAndReplaced(t *testing.T) {
	fx := newFixture(t)
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("hello body"))
	fx.begin(r)
	fx.in.st.features = FeatureBufferRequest
	// Read in two chunks of 6: "hello " then "body" with EOF.
	if got := fx.call(readBody, bodyKindRequest, 4000, 6); got != 6 {
		t.Fatalf("first read = %#x", got)
	}
	if got := fx.call(readBody, bodyKindRequest, 4006, 6); got != 1<<32|4 {
		t.Fatalf("second read = %#x", got)
	}
	if b, _ := fx.in.mem.Read(4000, 10); string(b) != "hello body" {
		t.Errorf("read %q", b)
	}
	// Buffered: the next handler still gets the whole body.
	if b, _ := io.ReadAll(fx.in.outgoing().Body); string(b) != "hello body" {
		t.Errorf("next handler body %q", b)
	}

	fx.begin(httptest.NewRequest(http.MethodPost, "/", strings.NewReader("old")))
	p, l := fx.put(0, "new ")
	fx.call(writeBody, bodyKindRequest, p, l)
	p, l = fx.put(0, "body")
	fx.call(writeBody, bodyKindRequest, p, l)
	out := fx.in.outgoing()
	if b, _ := io.ReadAll(out.Body); string(b) != "new body" || out.ContentLength != 8 {
		t.Errorf("replaced body %q (length %d)", b, out.ContentLength)
	}

	// Unbuffered reads consume the body.
	fx.begin(httptest.NewRequest(http.MethodPost, "/", strings.NewReader("abc")))
	if got := fx.call(readBody, bodyKindRequest, 0, 100); got != 1<<32|3 {
		t.Errorf("unbuffered read = %#x", got)
	}
	if got := fx.call(readBody, bodyKindRequest, 0, 100); got != 1<<32 {
		t.Errorf("read after EOF = %#x", got)
	}
}

func TestLogFunction(t *testing.T) {
	fx := newFixture(t)
	lb := &logBuffer{}
	fx.f.logger = slog.New(slog.NewTextHandler(lb, nil)).With("filter", "fx")
	p, l := fx.put(0, "hello from the guest")
	fx.call(logFn, 1, p, l)                 // warn
	fx.call(logFn, uint64(uint32(3)), p, l) // none
	if got := lb.String(); !strings.Contains(got, `level=WARN msg="hello from the guest" filter=fx`) || strings.Count(got, "\n") != 1 {
		t.Errorf("log output %q", got)
	}
	if fx.call(logEnabled, uint64(uint32(0xffffffff))) != 0 || fx.call(logEnabled, 2) != 1 {
		t.Error("log_enabled does not follow the logger's level (info)")
	}
	mustTrap(t, "message [65000, +1000) is outside guest memory", func() { fx.call(logFn, 0, 65000, 1000) })
}

func TestColdStartLogged(t *testing.T) {
	h, logs := bufferedHost(t, Config{})
	f := newFilter(t, h, FilterSpec{Name: "cold", Module: guest("noop"), Pool: PoolConfig{Min: 0, Max: 2}})
	if s := f.Stats().Pool; s.Size != 0 {
		t.Fatalf("min 0 pool has %d instances before traffic", s.Size)
	}
	srv := serve(t, f.Middleware(&upstream{}))
	if resp, _ := do(t, srv.Client(), http.MethodGet, srv.URL, nil, nil); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if !strings.Contains(logs.String(), `msg="cold start" filter=cold duration=`) {
		t.Errorf("cold start not logged:\n%s", logs.String())
	}
	if f.Stats().LastColdStart <= 0 {
		t.Error("cold start duration not recorded")
	}
}

// TestTestdataUpToDate rebuilds every .wat with wat2wasm and compares it
// with the committed .wasm.
func TestTestdataUpToDate(t *testing.T) {
	wat2wasm, err := exec.LookPath("wat2wasm")
	if err != nil {
		t.Fatal("wat2wasm not found: install Debian's wabt (apt-get install -y wabt)")
	}
	wats, _ := filepath.Glob("testdata/*.wat")
	more, _ := filepath.Glob("internal/instrument/testdata/*.wat")
	wats = append(wats, more...)
	if len(wats) == 0 {
		t.Fatal("no .wat files")
	}
	for _, w := range wats {
		out := filepath.Join(t.TempDir(), "out.wasm")
		if b, err := exec.Command(wat2wasm, w, "-o", out).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", w, err, b)
			continue
		}
		got, _ := os.ReadFile(out)
		want, err := os.ReadFile(strings.TrimSuffix(w, ".wat") + ".wasm")
		if err != nil || string(got) != string(want) {
			t.Errorf("%s.wasm is missing or stale: rebuild it (see testdata/README.md)", strings.TrimSuffix(w, ".wat"))
		}
	}
}
