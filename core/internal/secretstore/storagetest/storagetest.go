// Package storagetest is a conformance suite for certmagic.Storage
// implementations: the contract certmagic relies on (fs.ErrNotExist,
// idempotent Delete, List recursive or not returning the original keys,
// Stat, keys that do not collide), and the locks (one holder at a time
// among goroutines and among processes, TryLock, RenewLockLease, and a
// lock whose holder died taken over).
//
// The suite runs against the Secret storage on a real kube-apiserver and
// against certmagic.FileStorage, so both are held to one contract.
//
// # Helper processes
//
// The two-process tests re-execute the test binary, running only the test
// that called Run, with environment variables that make Run act as a lock
// holder instead. The calling test must therefore call IsHelper first and,
// when it reports true, call Helper and do nothing else (no cluster to
// start: the parent's storage is reached through Factory.Open).
package storagetest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

// Factory makes the storages the suite tests.
type Factory struct {
	// New returns a new, empty storage, and a description from which Open
	// makes another handle on the same storage, possibly in another
	// process of the same test binary.
	New func(t testing.TB) (certmagic.Storage, string)
	// Open returns a new handle on the storage desc describes.
	Open func(t testing.TB, desc string) certmagic.Storage
	// Expiry is the longest a lock outlives a holder that died (the lease
	// duration plus a poll interval, or FileStorage's staleness).
	Expiry time.Duration
	// MaxValueSize, when positive, is the largest value Store accepts;
	// one byte more must be refused with an error naming the key.
	MaxValueSize int
}

// Environment of a helper process.
const (
	envHelper = "SLUICE_STORAGETEST_HELPER" // "mutex" or "hold"
	envDesc   = "SLUICE_STORAGETEST_DESC"
	envLock   = "SLUICE_STORAGETEST_LOCK"
	envDir    = "SLUICE_STORAGETEST_DIR"
	envRounds = "SLUICE_STORAGETEST_ROUNDS"

	lockedLine = "storagetest: locked"
	doneLine   = "storagetest: done"
)

// IsHelper reports whether this process is a helper that Run started.
func IsHelper() bool { return os.Getenv(envHelper) != "" }

// Helper is the whole body of a helper process: it opens the parent's
// storage with open and does what the parent asked, writing progress to
// stdout. It never returns normally on failure (the exit status tells).
func Helper(t *testing.T, open func(t testing.TB, desc string) certmagic.Storage) {
	s := open(t, os.Getenv(envDesc))
	ctx := context.Background()
	name := os.Getenv(envLock)
	fail := func(format string, args ...any) {
		fmt.Printf("storagetest: helper: "+format+"\n", args...)
		os.Exit(3)
	}
	switch os.Getenv(envHelper) {
	case "hold":
		if err := s.Lock(ctx, name); err != nil {
			fail("lock %q: %v", name, err)
		}
		fmt.Println(lockedLine)
		select {} // until the parent kills us
	case "mutex":
		rounds, _ := strconv.Atoi(os.Getenv(envRounds))
		marker := filepath.Join(os.Getenv(envDir), "holder")
		for i := range rounds {
			if err := s.Lock(ctx, name); err != nil {
				fail("round %d: lock %q: %v", i, name, err)
			}
			f, err := os.OpenFile(marker, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if err != nil {
				fail("round %d: two holders of %q at once: %v", i, name, err)
			}
			f.Close()
			time.Sleep(20 * time.Millisecond)
			if err := os.Remove(marker); err != nil {
				fail("round %d: %v", i, err)
			}
			if err := s.Unlock(ctx, name); err != nil {
				fail("round %d: unlock %q: %v", i, name, err)
			}
		}
		fmt.Println(doneLine)
		os.Exit(0)
	default:
		fail("unknown mode %q", os.Getenv(envHelper))
	}
}

// Run runs the suite on storages from f, as subtests of t.
func Run(t *testing.T, f Factory) {
	if IsHelper() {
		t.Fatal("storagetest: Run called in a helper process: call Helper when IsHelper reports true")
	}
	ctx := context.Background()
	t.Run("MissingKey", func(t *testing.T) {
		s, _ := f.New(t)
		if _, err := s.Load(ctx, "no/such/key"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Load of a missing key: got %v, want fs.ErrNotExist", err)
		}
		if _, err := s.Stat(ctx, "no/such/key"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Stat of a missing key: got %v, want fs.ErrNotExist", err)
		}
		if s.Exists(ctx, "no/such/key") {
			t.Error("Exists of a missing key: true")
		}
		if _, err := s.List(ctx, "no/such", false); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("List of a missing prefix: got %v, want fs.ErrNotExist", err)
		}
	})
	t.Run("StoreLoadOverwrite", func(t *testing.T) {
		s, _ := f.New(t)
		all := make([]byte, 256)
		for i := range all {
			all[i] = byte(i)
		}
		for _, v := range [][]byte{[]byte("first"), all, {}, []byte("last")} {
			store(t, s, "certificates/ca/example.com/example.com.crt", v)
			if got := load(t, s, "certificates/ca/example.com/example.com.crt"); !bytes.Equal(got, v) {
				t.Fatalf("Load after Store of %d bytes: got %q", len(v), got)
			}
		}
	})
	t.Run("KeysDoNotCollide", func(t *testing.T) {
		s, _ := f.New(t)
		long := strings.Repeat("l", 120)
		keys := []string{
			"k/a.b", "k/a_b", "k/a-b", "k/A.B", "k/a@b", "k/a b", "k/a..b", "k/*.a.b", "k/a.b.", "k/ä.b",
			"k/" + long + "/" + long + "/" + long + "/" + long + "/x", // 480+ characters
			"k/" + long + "/" + long + "/" + long + "/" + long + "/y",
		}
		for i, k := range keys {
			store(t, s, k, []byte(strconv.Itoa(i)))
		}
		for i, k := range keys {
			if got := string(load(t, s, k)); got != strconv.Itoa(i) {
				t.Errorf("Load(%q) = %q, want %q (keys collide)", k, got, strconv.Itoa(i))
			}
		}
		got, err := s.List(ctx, "k", false)
		if err != nil {
			t.Fatal(err)
		}
		want := append(keys[:10:10], "k/"+long)
		if !sameSet(got, want) {
			t.Errorf("List(k, false) = %q, want %q", got, want)
		}
	})
	t.Run("Delete", func(t *testing.T) {
		s, _ := f.New(t)
		if err := s.Delete(ctx, "never/stored"); err != nil {
			t.Errorf("Delete of a missing key: %v, want nil", err)
		}
		store(t, s, "a/b/c", []byte("1"))
		store(t, s, "a/b/d", []byte("2"))
		store(t, s, "a/bc", []byte("3")) // shares the string prefix "a/b", not the folder
		store(t, s, "x", []byte("4"))
		if err := s.Delete(ctx, "x"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Load(ctx, "x"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Load after Delete: %v, want fs.ErrNotExist", err)
		}
		if err := s.Delete(ctx, "x"); err != nil {
			t.Errorf("second Delete: %v, want nil", err)
		}
		if err := s.Delete(ctx, "a/b"); err != nil {
			t.Fatalf("Delete of a folder: %v", err)
		}
		for _, k := range []string{"a/b/c", "a/b/d", "a/b"} {
			if s.Exists(ctx, k) {
				t.Errorf("Exists(%q) after deleting folder a/b", k)
			}
		}
		if got := string(load(t, s, "a/bc")); got != "3" {
			t.Errorf("a/bc after deleting folder a/b: %q", got)
		}
	})
	t.Run("ExistsAndStat", func(t *testing.T) {
		s, _ := f.New(t)
		before := time.Now().Add(-2 * time.Second) // file systems round mtimes
		store(t, s, "certificates/ca/h.test/h.test.crt", []byte("12345"))
		after := time.Now().Add(2 * time.Second)
		for _, k := range []string{"certificates/ca/h.test/h.test.crt", "certificates/ca/h.test", "certificates"} {
			if !s.Exists(ctx, k) {
				t.Errorf("Exists(%q) = false", k)
			}
		}
		ki, err := s.Stat(ctx, "certificates/ca/h.test/h.test.crt")
		if err != nil {
			t.Fatal(err)
		}
		if ki.Key != "certificates/ca/h.test/h.test.crt" || !ki.IsTerminal || ki.Size != 5 {
			t.Errorf("Stat of a key = %+v, want the key, IsTerminal, Size 5", ki)
		}
		if ki.Modified.Before(before) || ki.Modified.After(after) {
			t.Errorf("Stat Modified = %v, not the time of the Store (%v..%v)", ki.Modified, before, after)
		}
		di, err := s.Stat(ctx, "certificates/ca")
		if err != nil {
			t.Fatal(err)
		}
		if di.IsTerminal || di.Key != "certificates/ca" {
			t.Errorf("Stat of a folder = %+v, want IsTerminal false", di)
		}
		time.Sleep(50 * time.Millisecond)
		store(t, s, "certificates/ca/h.test/h.test.crt", []byte("renewed"))
		ki2, err := s.Stat(ctx, "certificates/ca/h.test/h.test.crt")
		if err != nil {
			t.Fatal(err)
		}
		if !ki2.Modified.After(ki.Modified) || ki2.Size != 7 {
			t.Errorf("Stat after a second Store = %+v, want Modified after %v and Size 7", ki2, ki.Modified)
		}
	})
	t.Run("List", func(t *testing.T) {
		s, _ := f.New(t)
		keys := []string{
			"acme/ca.test-dir/users/a@x.test/a.json",
			"acme/ca.test-dir/users/a@x.test/a.key",
			"acme/ca.test-dir/users/b@y.test/b.json",
			"acme/ca.test-dir/challenge_tokens/h.test.json",
			"certificates/ca.test-dir/h.test/h.test.crt",
			"certificates/ca.test-dir/h.test/h.test.key",
			"certificates/ca.test-dir/*.w.test/*.w.test.crt",
			"top",
		}
		for _, k := range keys {
			store(t, s, k, []byte(k))
		}
		cases := []struct {
			prefix    string
			recursive bool
			want      []string
		}{
			{"acme/ca.test-dir/users", false, []string{"acme/ca.test-dir/users/a@x.test", "acme/ca.test-dir/users/b@y.test"}},
			{"acme/ca.test-dir/users/a@x.test", false, keys[:2]},
			{"acme/ca.test-dir", false, []string{"acme/ca.test-dir/users", "acme/ca.test-dir/challenge_tokens"}},
			{"acme/ca.test-dir", true, []string{
				"acme/ca.test-dir/users", "acme/ca.test-dir/users/a@x.test", "acme/ca.test-dir/users/b@y.test",
				keys[0], keys[1], keys[2], "acme/ca.test-dir/challenge_tokens", keys[3]}},
			{"certificates", true, []string{
				"certificates/ca.test-dir", "certificates/ca.test-dir/h.test", "certificates/ca.test-dir/*.w.test",
				keys[4], keys[5], keys[6]}},
		}
		for _, c := range cases {
			got, err := s.List(ctx, c.prefix, c.recursive)
			if err != nil {
				t.Errorf("List(%q, %v): %v", c.prefix, c.recursive, err)
				continue
			}
			if !sameSet(got, c.want) {
				t.Errorf("List(%q, %v) =\n %q\nwant\n %q", c.prefix, c.recursive, sorted(got), sorted(c.want))
			}
		}
	})
	if f.MaxValueSize > 0 {
		t.Run("ValueSizeLimit", func(t *testing.T) {
			s, _ := f.New(t)
			store(t, s, "big/at-limit", bytes.Repeat([]byte{'x'}, f.MaxValueSize))
			err := s.Store(ctx, "big/over-limit", bytes.Repeat([]byte{'x'}, f.MaxValueSize+1))
			if err == nil || !strings.Contains(err.Error(), `"big/over-limit"`) {
				t.Errorf("Store of %d bytes: %v, want an error naming the key", f.MaxValueSize+1, err)
			}
			if s.Exists(ctx, "big/over-limit") {
				t.Error("a refused value was stored")
			}
		})
	}
	t.Run("LockUnlock", func(t *testing.T) {
		s, desc := f.New(t)
		other := f.Open(t, desc)
		if err := s.Lock(ctx, "issue_cert_h.test"); err != nil {
			t.Fatal(err)
		}
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		err := other.Lock(short, "issue_cert_h.test")
		cancel()
		if err == nil {
			t.Fatal("a second holder got a held lock")
		}
		if tl, ok := other.(certmagic.TryLocker); ok {
			if got, err := tl.TryLock(ctx, "issue_cert_h.test"); got || err != nil {
				t.Errorf("TryLock of a held lock = %v, %v; want false, nil", got, err)
			}
		}
		if err := s.Lock(ctx, "issue_cert_other.test"); err != nil { // other names are independent
			t.Fatal(err)
		}
		if r, ok := s.(certmagic.LockLeaseRenewer); ok {
			if err := r.RenewLockLease(ctx, "issue_cert_h.test", time.Minute); err != nil {
				t.Errorf("RenewLockLease of a held lock: %v", err)
			}
			if err := r.RenewLockLease(ctx, "never_locked", time.Minute); err == nil {
				t.Error("RenewLockLease of a lock not held: nil error")
			}
		}
		for _, n := range []string{"issue_cert_h.test", "issue_cert_other.test"} {
			if err := s.Unlock(ctx, n); err != nil {
				t.Fatal(err)
			}
		}
		if tl, ok := other.(certmagic.TryLocker); ok {
			got, err := tl.TryLock(ctx, "issue_cert_h.test")
			if !got || err != nil {
				t.Fatalf("TryLock after Unlock = %v, %v; want true, nil", got, err)
			}
			if err := other.Unlock(ctx, "issue_cert_h.test"); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("ConcurrentLock", func(t *testing.T) {
		// Goroutines on two handles of one storage: exactly one holder at a
		// time, counted with an atomic.
		s, desc := f.New(t)
		handles := []certmagic.Storage{s, f.Open(t, desc)}
		const goroutines, rounds = 8, 2
		var inside, most, total atomic.Int32
		var wg sync.WaitGroup
		errs := make(chan error, goroutines)
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h := handles[g%len(handles)]
				for range rounds {
					if err := h.Lock(ctx, "hammer"); err != nil {
						errs <- err
						return
					}
					n := inside.Add(1)
					for {
						m := most.Load()
						if n <= m || most.CompareAndSwap(m, n) {
							break
						}
					}
					time.Sleep(5 * time.Millisecond)
					inside.Add(-1)
					total.Add(1)
					if err := h.Unlock(ctx, "hammer"); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if most.Load() != 1 || total.Load() != goroutines*rounds {
			t.Errorf("most holders at once = %d (want 1), critical sections = %d (want %d)", most.Load(), total.Load(), goroutines*rounds)
		}
	})
	t.Run("TwoProcesses", func(t *testing.T) {
		_, desc := f.New(t)
		dir := t.TempDir()
		var outs [2]bytes.Buffer
		var cmds [2]*exec.Cmd
		for i := range cmds {
			cmds[i] = helperCmd(t, "mutex", desc, "two_processes", dir, 4)
			cmds[i].Stdout, cmds[i].Stderr = &outs[i], &outs[i]
			if err := cmds[i].Start(); err != nil {
				t.Fatal(err)
			}
		}
		for i, c := range cmds {
			err := c.Wait()
			if err != nil || !strings.Contains(outs[i].String(), doneLine) {
				t.Errorf("helper %d: %v\n%s", i, err, outs[i].String())
			}
		}
	})
	t.Run("ExpiryAfterHolderDies", func(t *testing.T) {
		s, desc := f.New(t)
		cmd := helperCmd(t, "hold", desc, "dies_holding", t.TempDir(), 0)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killed := false
		t.Cleanup(func() {
			if !killed {
				cmd.Process.Kill()
				cmd.Wait()
			}
		})
		if err := waitLine(out, lockedLine, 30*time.Second); err != nil {
			t.Fatalf("helper: %v\n%s", err, stderr.String())
		}
		go io.Copy(io.Discard, out)
		// Held by a live process: not ours, even after a while.
		short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		err = s.Lock(short, "dies_holding")
		cancel()
		if err == nil {
			t.Fatal("took a lock its live holder holds")
		}
		cmd.Process.Kill()
		cmd.Wait()
		killed = true
		start := time.Now()
		long, cancel := context.WithTimeout(ctx, 2*f.Expiry+5*time.Second)
		defer cancel()
		if err := s.Lock(long, "dies_holding"); err != nil {
			t.Fatalf("the lock of a dead holder was not taken over within %s: %v", 2*f.Expiry+5*time.Second, err)
		}
		t.Logf("taken over %s after the holder was killed (expiry %s)", time.Since(start).Round(time.Millisecond), f.Expiry)
		if err := s.Unlock(ctx, "dies_holding"); err != nil {
			t.Error(err)
		}
	})
}

// helperCmd re-executes the test binary as a helper running the current
// top-level test.
func helperCmd(t *testing.T, mode, desc, lock, dir string, rounds int) *exec.Cmd {
	top, _, _ := strings.Cut(t.Name(), "/")
	cmd := exec.Command(os.Args[0], "-test.run=^"+top+"$", "-test.count=1", "-test.timeout=5m")
	cmd.Env = append(os.Environ(),
		envHelper+"="+mode, envDesc+"="+desc, envLock+"="+lock, envDir+"="+dir,
		envRounds+"="+strconv.Itoa(rounds))
	return cmd
}

func waitLine(r io.Reader, line string, d time.Duration) error {
	found := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(r)
		var seen []string
		for sc.Scan() {
			if sc.Text() == line {
				found <- nil
				return
			}
			seen = append(seen, sc.Text())
		}
		found <- fmt.Errorf("exited before %q:\n%s", line, strings.Join(seen, "\n"))
	}()
	select {
	case err := <-found:
		return err
	case <-time.After(d):
		return fmt.Errorf("no %q within %s", line, d)
	}
}

func store(t *testing.T, s certmagic.Storage, key string, v []byte) {
	t.Helper()
	if err := s.Store(context.Background(), key, v); err != nil {
		t.Fatalf("Store(%q): %v", key, err)
	}
}

func load(t *testing.T, s certmagic.Storage, key string) []byte {
	t.Helper()
	v, err := s.Load(context.Background(), key)
	if err != nil {
		t.Fatalf("Load(%q): %v", key, err)
	}
	return v
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

func sameSet(a, b []string) bool { return slices.Equal(sorted(a), sorted(b)) }
