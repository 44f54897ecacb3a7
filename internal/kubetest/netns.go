package kubetest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// Netns is a network namespace the test created, linked to the host by a
// veth pair: the host side is 10.213.N.1/30, the namespace side
// 10.213.N.2/30, with N unused by any interface of the host (test
// processes running in parallel each get their own). Servers listening inside it have an address that the API
// server accepts in EndpointSlices (it refuses loopback ones), as pods do.
//
// Why namespaces and not a dial mapping in the gateway: the gateway then
// runs exactly as in a cluster, dialling the EndpointSlice addresses.
type Netns struct {
	// Name is the namespace's name under /run/netns.
	Name string
	// HostIP and IP are the host's and the namespace's addresses.
	HostIP, IP string
	hostLink   string
}

// netnsSeq numbers the namespaces of this process.
var netnsSeq atomic.Int32

// netnsLock serialises choosing a subnet across test processes (go test
// runs packages in parallel): the subnet is taken once its host address
// exists, which happens under the lock.
var netnsLock = filepath.Join(os.TempDir(), "sluice-e2e-netns.lock")

// NewNetns creates a network namespace and its veth link; cleanup removes
// both. It needs root and the `ip` command (Debian package iproute2), and
// fails t with how to get them otherwise.
func NewNetns(t testing.TB) *Netns {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("kubetest: network namespaces need root (the cluster e2e tests run as root in CI)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("kubetest: the ip command is missing: install the Debian package iproute2 (scripts/deps.sh does)")
	}
	seq := int(netnsSeq.Add(1))
	unlock, err := lockFile(netnsLock)
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	defer unlock()
	n, err := freeSubnet()
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	pid := os.Getpid() % 100000
	ns := &Netns{
		Name:     fmt.Sprintf("sluice-e2e-%d-%d", pid, seq),
		HostIP:   fmt.Sprintf("10.213.%d.1", n),
		IP:       fmt.Sprintf("10.213.%d.2", n),
		hostLink: fmt.Sprintf("sle%d-%d", pid, seq), // at most 15 bytes
	}
	peer := ns.hostLink + "p"
	if len(peer) > 15 {
		ns.hostLink = fmt.Sprintf("sle%d", n) // n is unique on the host
		peer = ns.hostLink + "p"
	}
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("kubetest: ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", ns.Name)
	t.Cleanup(func() {
		// Deleting the namespace deletes its veth end, and so the pair.
		exec.Command("ip", "netns", "del", ns.Name).Run()
		exec.Command("ip", "link", "del", ns.hostLink).Run()
	})
	ip("link", "add", ns.hostLink, "type", "veth", "peer", "name", peer)
	ip("link", "set", peer, "netns", ns.Name)
	ip("addr", "add", ns.HostIP+"/30", "dev", ns.hostLink)
	ip("link", "set", ns.hostLink, "up")
	ip("-n", ns.Name, "addr", "add", ns.IP+"/30", "dev", peer)
	ip("-n", ns.Name, "link", "set", peer, "up")
	ip("-n", ns.Name, "link", "set", "lo", "up")
	return ns
}

// freeSubnet returns N such that no interface has an address in
// 10.213.N.0/24. Callers hold netnsLock.
func freeSubnet() (int, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return 0, err
	}
	used := map[int]bool{}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if ip4 := ipn.IP.To4(); ip4 != nil && ip4[0] == 10 && ip4[1] == 213 {
				used[int(ip4[2])] = true
			}
		}
	}
	for n := 1; n <= 250; n++ {
		if !used[n] {
			return n, nil
		}
	}
	return 0, errors.New("no free subnet in 10.213.1-250.0/24: remove leftover sluice-e2e namespaces (ip netns list)")
}

// lockFile takes an exclusive flock on path and returns its release.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil // closing releases the lock
}

// Listen opens a TCP listener on the namespace's address. The socket
// belongs to the namespace; it is served from any goroutine.
func (ns *Netns) Listen(port int) (net.Listener, error) {
	var l net.Listener
	err := ns.do(func() error {
		var err error
		l, err = net.Listen("tcp", net.JoinHostPort(ns.IP, fmt.Sprint(port)))
		return err
	})
	return l, err
}

// do runs f on an OS thread switched into the namespace. Sockets f creates
// stay in the namespace after the thread switches back.
func (ns *Netns) do(f func() error) error {
	target, err := os.Open("/run/netns/" + ns.Name)
	if err != nil {
		return fmt.Errorf("netns %s: %w", ns.Name, err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		// The goroutine never unlocks: if switching back fails, the thread
		// ends with it instead of serving other goroutines in the wrong
		// namespace.
		runtime.LockOSThread()
		home, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			errc <- err
			return
		}
		defer home.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("netns %s: setns: %w", ns.Name, err)
			return
		}
		ferr := f()
		if err := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("netns %s: switch back: %w", ns.Name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
