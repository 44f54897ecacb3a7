// Package filters holds the example filters; this test builds each and
// runs its tests: the Go filter's native unit tests (go test in its own
// module), and every filter's .wasm through wasm/filtertest in a real host.
package filters

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/sluicegw/sluice/wasm"
	"github.com/sluicegw/sluice/wasm/filtertest"
)

// peerlimitWasm is the Go example built once for the whole test run.
var peerlimitWasm string

// cacheDir is wazero's compilation cache, shared by test runs and
// packages: compiling a 3 MB Go guest takes seconds, over a minute under
// -race on a busy machine; a cached one loads in milliseconds. Entries are
// keyed by module digest and wazero version, so sharing is safe.
var cacheDir = filepath.Join(os.TempDir(), "sluice-test-wazero-cache")

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-filters-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	peerlimitWasm = filepath.Join(dir, "peerlimit.wasm")
	if err := filtertest.BuildGo("peerlimit", peerlimitWasm); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func goCommand(t *testing.T) string {
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	p, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("the go command is needed to run the Go filter's native tests")
	}
	return p
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// TestPeerlimitNative runs the Go example's own unit tests (package
// sdk/sdktest, no wasm) as its author would: go test in its folder.
func TestPeerlimitNative(t *testing.T) {
	cmd := exec.Command(goCommand(t), "test", "-count=1", ".")
	cmd.Dir = "peerlimit"
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go test in examples/filters/peerlimit: %v\n%s", err, out)
	}
}

func verified(cn, spiffe string) *tls.ConnectionState {
	c := &x509.Certificate{Raw: []byte(cn + spiffe), Subject: pkix.Name{CommonName: cn}}
	if spiffe != "" {
		u, _ := url.Parse(spiffe)
		c.URIs = []*url.URL{u}
	}
	return &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}, VerifiedChains: [][]*x509.Certificate{{c}}}
}

// TestPeerlimitWasm: the same cases as the native test, through the built
// .wasm in a real host (a synthetic r.TLS stands for the handshake).
func TestPeerlimitWasm(t *testing.T) {
	h := filtertest.Load(t, peerlimitWasm, filtertest.Options{
		Name: "peerlimit", Config: []byte(`{"rate":1,"period_ms":60000,"burst":2}`), Host: wasm.Config{CacheDir: cacheDir},
	})
	for i, tc := range []struct {
		tls      *tls.ConnectionState
		status   int
		identity string
	}{
		{verified("alice", "spiffe://shop.test/web"), 200, "spiffe://shop.test/web"},
		{verified("alice", "spiffe://shop.test/web"), 200, "spiffe://shop.test/web"},
		{verified("alice", "spiffe://shop.test/web"), 429, ""},
		{verified("alice", ""), 200, "CN=alice"},
		{nil, 200, "ip:192.0.2.1"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.TLS = tc.tls
		res := h.Do(r)
		if res.Status != tc.status {
			t.Fatalf("request %d: status %d %q, want %d\nlogs: %q", i, res.Status, res.Body, tc.status, h.Logs())
		}
		if tc.status == 200 && res.Upstream.Header.Get("X-Client-Identity") != tc.identity {
			t.Errorf("request %d: identity %q, want %q", i, res.Upstream.Header.Get("X-Client-Identity"), tc.identity)
		}
		if tc.status == 429 && res.Header.Get("Retry-After") != "60" {
			t.Errorf("request %d: Retry-After %q, want 60", i, res.Header.Get("Retry-After"))
		}
	}
	if got := h.Metric("denied_total"); got != 1 {
		t.Errorf("denied_total = %d, want 1", got)
	}
	if s := h.Filter().Stats(); s.Traps+s.Deadlines+s.MemoryCaps != 0 {
		t.Errorf("failures: %+v", s)
	}
}

func TestPathguardWasm(t *testing.T) {
	h := filtertest.Load(t, filepath.Join("pathguard", "pathguard.wasm"), filtertest.Options{Name: "pathguard"})
	for _, tc := range []struct {
		uri    string
		status int
	}{
		{"/", 200},
		{"/admin", 403},
		{"/admin/users", 403},
		{"/admin?x=1", 403},
		{"/administrator", 200},
		{"/adm", 200},
		{"/shop/admin", 200},
		{"/" + string(bytes.Repeat([]byte("a"), 70000)), 403}, // too long to inspect
	} {
		res := h.Do(httptest.NewRequest("GET", tc.uri, nil))
		if res.Status != tc.status {
			t.Errorf("GET %.20s: status %d, want %d", tc.uri, res.Status, tc.status)
			continue
		}
		if tc.status == 403 && (res.Next || string(res.Body) != "forbidden\n") {
			t.Errorf("GET %.20s: body %q, upstream called %v", tc.uri, res.Body, res.Next)
		}
		if tc.status == 200 && res.Upstream.Header.Get("X-Pathguard") != "passed" {
			t.Errorf("GET %.20s: upstream headers %v", tc.uri, res.Upstream.Header)
		}
	}
}

// TestPathguardUpToDate fails when pathguard.wasm was not rebuilt from
// pathguard.wat (needs wat2wasm, Debian package wabt).
func TestPathguardUpToDate(t *testing.T) {
	wat2wasm, err := exec.LookPath("wat2wasm")
	if err != nil {
		t.Fatal("wat2wasm not found: apt-get install -y wabt")
	}
	out := filepath.Join(t.TempDir(), "pathguard.wasm")
	if b, err := exec.Command(wat2wasm, filepath.Join("pathguard", "pathguard.wat"), "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm: %v\n%s", err, b)
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join("pathguard", "pathguard.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("pathguard.wasm differs from wat2wasm pathguard.wat: rebuild it")
	}
}
