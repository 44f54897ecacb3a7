package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sluicegw/sluice/internal/testcert"
)

// upstreamBody is what bench/cmd/upstream answers to every request.
const upstreamBody = "hello, bench\n"

// lab is the shared setup of a benchmark run: binaries, certificates and
// the one upstream.
type lab struct {
	dir      string // scratch folder, removed by close
	bin      string // built binaries: sluice, upstream, benchplugin
	wasm     string // wazero compilation cache, shared by every sluice start
	script   string // wrk's Lua script
	cert     string // server certificate (PEM) for bench.test, *.bench.test, localhost, 127.0.0.1
	key      string
	pem      string // cert + key in one file (HAProxy)
	caSecret string // a Secret manifest holding the client CA
	client   tls.Certificate
	roots    *x509.CertPool

	upstream   *proc
	upAddr     string // plain HTTP
	upTLSAddr  string
	gomaxprocs string
	started    []*proc // stopped by close
	logf       func(format string, args ...any)
}

// proc is one started process: a proxy or the upstream.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
	err  error
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop ends the process group with SIGTERM, then SIGKILL after 5 s.
// Safe to call twice and on a process that already exited.
func (p *proc) stop() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.done:
	default:
		syscall.Kill(-p.pid(), syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-p.pid(), syscall.SIGKILL)
			<-p.done
		}
	}
	if p.log != nil {
		p.log.Close()
	}
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// start starts a process in its own process group, its output in
// dir/NAME.log.
func (l *lab) start(name string, env []string, args ...string) (*proc, error) {
	f, err := os.Create(filepath.Join(l.dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: f, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	l.started = append(l.started, p)
	return p, nil
}

// logText is the output of a process so far.
func (l *lab) logText(name string) string {
	b, _ := os.ReadFile(filepath.Join(l.dir, name+".log"))
	return string(b)
}

// freePort returns a loopback address nothing listens on right now.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func freePorts(n int) ([]string, error) {
	out := make([]string, n)
	for i := range out {
		a, err := freePort()
		if err != nil {
			return nil, err
		}
		out[i] = a
	}
	return out, nil
}

// newLab builds the binaries into dir/bin (or uses binDir when set) and
// writes the certificates. It starts nothing.
func newLab(dir, binDir, gomaxprocs string, logf func(string, ...any)) (*lab, error) {
	l := &lab{dir: dir, bin: binDir, wasm: filepath.Join(dir, "wazero"), gomaxprocs: gomaxprocs, logf: logf}
	if l.bin == "" {
		l.bin = filepath.Join(dir, "bin")
		logf("building sluice, upstream, benchplugin into %s", l.bin)
		cmd := exec.Command("go", "build", "-o", l.bin+"/", "./cmd/sluice", "./bench/cmd/upstream", "./bench/cmd/benchplugin")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("go build (run from the repository root): %w", err)
		}
	}
	l.script = filepath.Join(dir, "bench.lua")
	if err := os.WriteFile(l.script, []byte(wrkScript), 0o644); err != nil {
		return nil, err
	}
	ca, err := testcert.CA("bench CA")
	if err != nil {
		return nil, err
	}
	srv, err := testcert.Leaf(ca, []string{"bench.test", "*.bench.test", "localhost", "127.0.0.1"}, testcert.Options{NotAfter: time.Now().Add(7 * 24 * time.Hour)})
	if err != nil {
		return nil, err
	}
	cli, err := testcert.Leaf(ca, []string{"bench-client"}, testcert.Options{Client: true, NotAfter: time.Now().Add(7 * 24 * time.Hour)})
	if err != nil {
		return nil, err
	}
	l.cert, l.key, l.pem = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "bench.pem")
	for f, b := range map[string][]byte{l.cert: srv.CertPEM, l.key: srv.KeyPEM, l.pem: append(append([]byte{}, srv.CertPEM...), srv.KeyPEM...)} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			return nil, err
		}
	}
	l.client = cli.TLSCertificate()
	l.roots = x509.NewCertPool()
	l.roots.AddCert(ca.Cert)
	l.caSecret = fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: client-ca, namespace: default}
data:
  ca.crt: %s
`, base64.StdEncoding.EncodeToString(ca.CertPEM))
	return l, nil
}

// startUpstream starts the one upstream (plain and TLS) and waits for it.
func (l *lab) startUpstream() error {
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	l.upAddr, l.upTLSAddr = ports[0], ports[1]
	p, err := l.start("upstream", nil, filepath.Join(l.bin, "upstream"), "-addr", l.upAddr, "-tls-addr", l.upTLSAddr, "-cert", l.cert, "-key", l.key)
	if err != nil {
		return err
	}
	l.upstream = p
	return l.waitServing(p, "http://"+l.upAddr+"/", "", 10*time.Second)
}

// counts returns and clears the upstream's per-second request counts.
func (l *lab) counts() (map[string]int64, error) {
	resp, err := http.Get("http://" + l.upAddr + "/__counts")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]int64{}
	return out, jsonDecode(resp.Body, &out)
}

// httpClient is an HTTP client trusting the bench CA.
func (l *lab) httpClient() *http.Client {
	cfg := &tls.Config{RootCAs: l.roots, ServerName: "bench.test"}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

// get sends one GET to url with Host host and returns status and body.
func get(c *http.Client, url, host string) (int, string, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return 0, "", err
	}
	if host != "" {
		req.Host = host
		if tr, ok := c.Transport.(*http.Transport); ok && strings.HasPrefix(url, "https:") {
			cfg := tr.TLSClientConfig.Clone()
			cfg.ServerName = host
			c = &http.Client{Timeout: c.Timeout, Transport: &http.Transport{TLSClientConfig: cfg}}
			defer c.CloseIdleConnections()
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// waitServing waits until url (with Host host) answers 200 with the
// upstream's body, or p exits, or timeout passes.
func (l *lab) waitServing(p *proc, url, host string, timeout time.Duration) error {
	c := l.httpClient()
	defer c.CloseIdleConnections()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("%s exited (%v) before serving %s; its log:\n%s", p.name, p.err, url, tailText(l.logText(p.name), 2000))
		}
		status, body, err := get(c, url, host)
		if err == nil && status == 200 && body == upstreamBody {
			return nil
		}
		// A gateway that refused its routes will not serve them: say why now.
		if log := l.logText(p.name); strings.Contains(log, `"msg":"invalid object"`) {
			return fmt.Errorf("%s refused its manifests; its log:\n%s", p.name, tailText(log, 2000))
		}
		last = fmt.Sprintf("status %d body %q err %v", status, body, err)
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s: %s (Host %q) not serving after %s: last %s; its log:\n%s", p.name, url, host, timeout, last, tailText(l.logText(p.name), 2000))
}

func tailText(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// close stops every started process (in reverse order) and removes the
// scratch folder unless keep is set. Safe after a half-finished setup.
func (l *lab) close(keep bool) error {
	for i := len(l.started) - 1; i >= 0; i-- {
		l.started[i].stop()
	}
	if keep {
		return nil
	}
	return os.RemoveAll(l.dir)
}
