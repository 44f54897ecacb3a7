// Package kubetest starts a real etcd and kube-apiserver on loopback for
// cluster-mode tests, and network namespaces whose addresses the API
// server accepts in EndpointSlices (see netns.go).
//
// The binaries come from scripts/kube-assets.sh (built once through the Go
// module proxy and cached in ~/.cache/sluice/kube-assets; `make test` runs it
// through scripts/deps.sh). When they are missing, Start runs the script
// itself, and fails the test with the command to run when that fails.
//
// # Notes
//
//   - Every listener is on 127.0.0.1 with a port picked at start; nothing
//     else is contacted.
//   - The API server authenticates two static tokens: one of
//     system:masters (Cluster.Kubeconfig, Cluster.Client) and one of User,
//     who may do nothing until the test grants it RBAC
//     (Cluster.UserKubeconfig), to test least privilege.
//   - Cleanup stops the API server, then etcd, and removes their data.
package kubetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// EnvAssets names a folder holding kube-apiserver and etcd, overriding the
// cache folder.
const EnvAssets = "SLUICE_KUBE_ASSETS"

// User is the unprivileged user of Cluster.UserKubeconfig.
const User = "kubetest-user"

// startTimeout bounds how long each process may take to become ready.
const startTimeout = 90 * time.Second

// Cluster is a running etcd + kube-apiserver pair.
type Cluster struct {
	// Kubeconfig is the path of a kubeconfig for the API server, as an
	// administrator (system:masters).
	Kubeconfig string
	// UserKubeconfig is the path of a kubeconfig for User, who has no
	// permission the test did not grant.
	UserKubeconfig string
	// Client is a clientset for the API server (system:masters).
	Client kubernetes.Interface
	// URL is the API server's https URL.
	URL string

	t      testing.TB
	dir    string
	token  string
	user   string // User's token
	assets string
	port   int
	etcd   string // client URL

	mu        sync.Mutex
	apiserver *process
	etcdProc  *process
}

// process is a started child and where its output goes.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// Assets returns the folder with kube-apiserver and etcd, building them
// with scripts/kube-assets.sh when they are missing. It fails t with the
// command to run when they cannot be had.
func Assets(t testing.TB) string {
	t.Helper()
	dir := os.Getenv(EnvAssets)
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			t.Fatalf("kubetest: no cache folder for the kube assets (%v); set %s", err, EnvAssets)
		}
		dir = filepath.Join(cache, "sluice", "kube-assets")
	}
	if haveAssets(dir) {
		return dir
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatalf("kubetest: kube-apiserver and etcd are not in %s, and the build script cannot be found: %v", dir, err)
	}
	script := filepath.Join(root, "scripts", "kube-assets.sh")
	t.Logf("kubetest: building kube-apiserver and etcd into %s (cold: 12-25 minutes on 2 cores)", dir)
	out, err := runScript(script, dir)
	if err != nil || !haveAssets(dir) {
		t.Fatalf("kubetest: kube-apiserver and etcd are missing from %s and building them failed (%v). Run `scripts/kube-assets.sh %s` (or `make deps`), or set %s to a folder holding both.\n%s",
			dir, err, dir, EnvAssets, tail(out, 30))
	}
	return dir
}

// runScript runs scripts/kube-assets.sh DIR and returns its output.
func runScript(script, dir string) (string, error) {
	cmd := exec.Command("bash", script, dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func haveAssets(dir string) bool {
	for _, name := range []string{"kube-apiserver", "etcd"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

// repoRoot walks up from the working directory to the folder with go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Start starts etcd and kube-apiserver on loopback and waits until the API
// server is ready. Cleanup stops both.
func Start(t testing.TB) *Cluster {
	t.Helper()
	assets := Assets(t)
	dir := t.TempDir()
	c := &Cluster{t: t, dir: dir, assets: assets}
	t.Cleanup(c.stop)

	c.token, c.user = randomToken(t), randomToken(t)
	tokens := c.token + `,kubetest-admin,1001,"system:masters"` + "\n" + c.user + "," + User + ",1002\n"
	must(t, os.WriteFile(filepath.Join(dir, "tokens.csv"), []byte(tokens), 0o600))
	must(t, writeServiceAccountKey(dir))
	must(t, os.MkdirAll(filepath.Join(dir, "certs"), 0o700))

	ports := FreePorts(t, 3)
	clientURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	c.etcd = clientURL
	c.port = ports[2]
	c.URL = "https://127.0.0.1:" + strconv.Itoa(c.port)

	etcd, err := c.spawn("etcd", filepath.Join(assets, "etcd"),
		"--name", "kubetest", "--data-dir", filepath.Join(dir, "etcd"), "--unsafe-no-fsync",
		"--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "kubetest="+peerURL)
	if err != nil {
		t.Fatal(err)
	}
	c.etcdProc = etcd
	if err := waitHTTP(etcd, clientURL+"/health", "", startTimeout); err != nil {
		t.Fatalf("kubetest: etcd: %v\n%s", err, tailFile(etcd.log, 20))
	}
	c.StartAPIServer()

	c.Kubeconfig = filepath.Join(dir, "kubeconfig")
	c.UserKubeconfig = filepath.Join(dir, "kubeconfig-user")
	must(t, c.writeKubeconfig(c.Kubeconfig, c.token))
	must(t, c.writeKubeconfig(c.UserKubeconfig, c.user))
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 100, 200
	c.Client, err = kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// StartAPIServer starts the API server (again, after StopAPIServer) on
// the same port and waits until it is ready.
func (c *Cluster) StartAPIServer() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.apiserver != nil {
		c.t.Fatal("kubetest: the API server is already running")
	}
	port := strconv.Itoa(c.port)
	p, err := c.spawn("kube-apiserver", filepath.Join(c.assets, "kube-apiserver"),
		"--etcd-servers="+c.etcd,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port="+port,
		"--cert-dir="+filepath.Join(c.dir, "certs"),
		"--endpoint-reconciler-type=none",
		"--service-account-issuer=https://127.0.0.1:"+port+"/",
		"--service-account-key-file="+filepath.Join(c.dir, "sa.pub"),
		"--service-account-signing-key-file="+filepath.Join(c.dir, "sa.key"),
		"--service-cluster-ip-range=10.0.0.0/24",
		"--authorization-mode=RBAC",
		"--token-auth-file="+filepath.Join(c.dir, "tokens.csv"),
		"--disable-admission-plugins=ServiceAccount",
		"--allow-privileged=true")
	if err != nil {
		c.t.Fatal(err)
	}
	c.apiserver = p
	if err := waitHTTP(p, c.URL+"/readyz", c.token, startTimeout); err != nil {
		c.t.Fatalf("kubetest: kube-apiserver: %v\n%s", err, tailFile(p.log, 30))
	}
}

// StopAPIServer stops the API server and waits until it has exited; etcd
// keeps the data.
func (c *Cluster) StopAPIServer() {
	c.mu.Lock()
	p := c.apiserver
	c.apiserver = nil
	c.mu.Unlock()
	if p != nil {
		p.stop()
	}
}

// PauseAPIServer freezes the API server (SIGSTOP): connections stay open
// and nothing answers, as in a network cut. ResumeAPIServer undoes it.
func (c *Cluster) PauseAPIServer() { c.signalAPIServer(syscall.SIGSTOP) }

// ResumeAPIServer lets a paused API server run again (SIGCONT).
func (c *Cluster) ResumeAPIServer() { c.signalAPIServer(syscall.SIGCONT) }

func (c *Cluster) signalAPIServer(sig syscall.Signal) {
	c.t.Helper()
	c.mu.Lock()
	p := c.apiserver
	c.mu.Unlock()
	if p == nil {
		c.t.Fatal("kubetest: the API server is not running")
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		c.t.Fatalf("kubetest: signal the API server: %v", err)
	}
}

func (c *Cluster) stop() {
	c.StopAPIServer()
	c.mu.Lock()
	p := c.etcdProc
	c.etcdProc = nil
	c.mu.Unlock()
	if p != nil {
		p.stop()
	}
}

// spawn starts a process whose output goes to a log file in c.dir.
func (c *Cluster) spawn(name, bin string, args ...string) (*process, error) {
	log := filepath.Join(c.dir, fmt.Sprintf("%s-%d.log", name, time.Now().UnixNano()))
	f, err := os.Create(log)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("kubetest: start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: log, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// stop sends SIGTERM (after SIGCONT, in case it was paused), then
// SIGKILL after 10 s, and waits for the exit.
func (p *process) stop() {
	p.cmd.Process.Signal(syscall.SIGCONT)
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// waitHTTP polls url until it answers 200, the process exits, or d passes.
func waitHTTP(p *process, url, token string, d time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		// The API server's serving certificate is self-signed at start.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before it was ready (%v)", p.name, p.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("%s not ready at %s within %s", p.name, url, d)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *Cluster) writeKubeconfig(path, token string) error {
	body := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kubetest
  cluster:
    server: %s
    insecure-skip-tls-verify: true
users:
- name: admin
  user:
    token: %s
contexts:
- name: kubetest
  context: {cluster: kubetest, user: admin}
current-context: kubetest
`, c.URL, token)
	return os.WriteFile(path, []byte(body), 0o600)
}

func randomToken(t testing.TB) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func writeServiceAccountKey(dir string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "sa.key"), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600)
}

// FreePorts returns n distinct TCP ports on 127.0.0.1 that were free a
// moment ago. The sockets are closed before it returns, so a port can in
// theory be taken before it is used; programs that need fixed ports
// (etcd, kube-apiserver, pebble) leave no other choice.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	var out []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return out
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return tail(string(b), n)
}
