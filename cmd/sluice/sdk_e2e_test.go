package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicegw/sluice/internal/testcert"
	"github.com/sluicegw/sluice/wasm/filtertest"
)

// wazeroCache is the compilation cache the SDK tests share with each other
// and with later runs: a 3 MB standard-Go guest takes seconds to compile,
// over a minute in a -race gateway on a busy machine; cached, milliseconds.
// Entries are keyed by module digest and wazero version.
var wazeroCache = filepath.Join(os.TempDir(), "sluice-test-wazero-cache")

var peerlimit struct {
	once sync.Once
	path string
	err  error
}

// peerlimitWasm builds examples/filters/peerlimit once per test binary.
func peerlimitWasm(t *testing.T) string {
	t.Helper()
	peerlimit.once.Do(func() {
		dir, err := os.MkdirTemp("", "sluice-peerlimit-")
		if err != nil {
			peerlimit.err = err
			return
		}
		peerlimit.path = filepath.Join(dir, "peerlimit.wasm")
		peerlimit.err = filtertest.BuildGo(filepath.Join(repoRoot(t), "examples", "filters", "peerlimit"), peerlimit.path)
	})
	if peerlimit.err != nil {
		t.Fatal(peerlimit.err)
	}
	return peerlimit.path
}

// TestSDKFilterThroughGateway: a standard-Go filter written with the SDK
// (examples/filters/peerlimit) on an mTLS route of the real gateway
// process reads the client certificate the gateway verified
// (sluice.tls_peer_*) and takes tokens from its bucket (sluice.rate_take).
func TestSDKFilterThroughGateway(t *testing.T) {
	module := peerlimitWasm(t)
	be := startBackend(t, "web", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "identity=%s cert=%s\n", r.Header.Get("X-Client-Identity"), r.Header.Get("X-Client-Cert"))
	}))
	clientCA, err := testcert.CA("client ca")
	if err != nil {
		t.Fatal(err)
	}
	alice, err := testcert.Leaf(clientCA, []string{"alice"}, testcert.Options{Client: true})
	if err != nil {
		t.Fatal(err)
	}
	bob, err := testcert.Leaf(clientCA, []string{"bob"}, testcert.Options{Client: true})
	if err != nil {
		t.Fatal(err)
	}
	site := startMTLSSite(t, be, clientCA, "on",
		"name: peerlimit\nmodule: file://"+module+"\nconfig: {rate: 1, period_ms: 60000, burst: 2, require_cert: true}")
	g, roots := site.g, site.roots

	get := func(who *testcert.Pair) (int, string, http.Header) {
		t.Helper()
		c := httpsClient(g.addr("https"), roots, who.TLSCertificate())
		resp, err := c.Get("https://id.test/")
		if err != nil {
			t.Fatalf("GET as %s: %v", who.Cert.Subject, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	waitUntil(t, 4*time.Minute, "the filtered route", func() bool {
		c := httpsClient(g.addr("https"), roots, bob.TLSCertificate())
		resp, err := c.Get("https://id.test/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	if strings.Contains(g.Log(), "invalid object") {
		t.Fatalf("the manifests produced warnings:\n%s", g.Log())
	}
	aliceID := "identity=" + alice.Cert.Subject.String() + " cert=verified\n"
	for i, want := range []struct {
		who    *testcert.Pair
		status int
		body   string
	}{
		{alice, 200, aliceID},
		{alice, 200, aliceID},
		{alice, 429, "rate limit exceeded for " + alice.Cert.Subject.String()},   // burst 2 used up
		{bob, 200, "identity=" + bob.Cert.Subject.String() + " cert=verified\n"}, // bob has his own bucket (one token left)
	} {
		status, body, hdr := get(want.who)
		if status != want.status || !strings.Contains(body, want.body) {
			t.Fatalf("request %d: %d %q, want %d with %q", i, status, body, want.status, want.body)
		}
		if status == 429 && hdr.Get("Retry-After") != "60" {
			t.Errorf("request %d: Retry-After %q, want 60", i, hdr.Get("Retry-After"))
		}
	}
	if !strings.HasPrefix(alice.Cert.Subject.String(), "CN=alice") {
		t.Errorf("subject %q: the identity is not the certificate's", alice.Cert.Subject)
	}
}

// TestFilterNew scaffolds a filter with the real binary, then runs what
// sdk/README.md promises: make build, make test (native), make wasmtest
// (the .wasm in a real host through wasm/filtertest), and the filter on a
// route of the real gateway. The Go commands run offline against the
// module cache (GOPROXY=off): the scaffold points at this checkout.
func TestFilterNew(t *testing.T) {
	makeBin, err := exec.LookPath("make")
	if err != nil {
		t.Fatal("make is needed: apt-get install -y make")
	}
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	work := t.TempDir()
	dir := filepath.Join(work, "hello")
	cmd := exec.Command(binary, "filter", "new", "hello", dir, "--sluice-dir", repoRoot(t))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sluice filter new: %v\n%s", err, out)
	}
	for _, target := range []string{"build", "test", "wasmtest"} {
		cmd := exec.Command(makeBin, target, "GO="+gobin)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "GOPROXY=off", "GOSUMDB=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make %s: %v\n%s", target, err, out)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "hello.wasm"))
	if err != nil {
		t.Fatalf("make build wrote no hello.wasm: %v", err)
	}
	if !bytes.HasPrefix(b, []byte("\x00asm")) {
		t.Fatal("hello.wasm is not a WebAssembly module")
	}

	// README steps 5 and 6: the filter on a route, seen with an HTTP client.
	be := startBackend(t, "web", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "filtered-by=%s\n", r.Header.Get("X-Filtered-By"))
	}))
	cfgFile := filepath.Join(t.TempDir(), "sluice.yaml")
	writeFile(t, cfgFile, "wasm:\n  cache_dir: "+wazeroCache+"\n")
	manifests := t.TempDir()
	writeFile(t, filepath.Join(manifests, "base.yaml"), classYAML+"---\n"+service("web", be))
	g := startGateway(t, "--config", cfgFile, "--manifests", manifests)
	replaceFile(t, filepath.Join(manifests, "hello.yaml"),
		filteredIngress("web", "web.test", "web", "name: hello\nmodule: file://"+filepath.Join(dir, "hello.wasm")))
	client := &http.Client{Timeout: 10 * time.Second}
	hello := func(hdr ...string) (int, string, error) {
		req, _ := http.NewRequest("GET", "http://"+g.addr("http")+"/", nil)
		req.Host = "web.test"
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	var last string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last answer of the hello route: %s", last)
		}
	})
	waitUntil(t, 4*time.Minute, "the hello route", func() bool {
		status, body, err := hello()
		last = fmt.Sprintf("%d %q %v", status, body, err)
		return err == nil && status == 200 && body == "filtered-by=hello\n"
	})
	status, body, err := hello("X-Block", "1")
	if err != nil {
		t.Fatal(err)
	}
	if status != 403 || body != "blocked by hello\n" {
		t.Fatalf("X-Block: %d %q, want 403 from the filter", status, body)
	}
}

func TestFilterNewErrors(t *testing.T) {
	full := t.TempDir()
	writeFile(t, filepath.Join(full, "x"), "")
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"filter"}, 2, "Usage"},
		{[]string{"filter", "new"}, 2, "Usage"},
		{[]string{"filter", "new", "Bad_Name", t.TempDir()}, 1, `filter name "Bad_Name"`},
		{[]string{"filter", "new", "ok", full}, 1, "exists and is not empty"},
		{[]string{"filter", "new", "ok", filepath.Join(t.TempDir(), "ok"), "--sluice-dir", t.TempDir()}, 1, "not a Sluice checkout"},
	} {
		var out, errOut bytes.Buffer
		if code := run(tc.args, &out, &errOut); code != tc.code || !strings.Contains(errOut.String(), tc.msg) {
			t.Errorf("sluice %v = %d %q, want %d with %q", tc.args, code, errOut.String(), tc.code, tc.msg)
		}
	}
}
