package watch

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestDirBatchesAndSeesRenames(t *testing.T) {
	before := runtime.NumGoroutine()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int32
	done := make(chan error, 1)
	go func() {
		done <- Dir(ctx, dir, func(n string) bool { return n == "c.yaml" }, 50*time.Millisecond, func() error { calls.Add(1); return nil })
	}()
	// The first call comes once the watch is in place.
	waitFor(t, func() bool { return calls.Load() == 1 })

	// A burst of writes is one call.
	p := filepath.Join(dir, "c.yaml")
	for i := range 5 {
		if err := os.WriteFile(p, []byte{byte(i)}, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return calls.Load() == 2 })

	// Other files are ignored.
	if err := os.WriteFile(filepath.Join(dir, "other"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if n := calls.Load(); n != 2 {
		t.Fatalf("a write to another file triggered a reload: calls = %d", n)
	}

	// Rename-replace, as editors do.
	tmp := filepath.Join(dir, ".c.yaml.swp")
	if err := os.WriteFile(tmp, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return calls.Load() == 3 })

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return runtime.NumGoroutine() <= before })
}

func TestDirMissing(t *testing.T) {
	err := Dir(context.Background(), filepath.Join(t.TempDir(), "nope"), nil, time.Millisecond, func() error {
		t.Error("onChange called for a missing directory")
		return nil
	})
	if err == nil {
		t.Fatal("want an error for a missing directory")
	}
}

func TestDirRemovedAndCallbackError(t *testing.T) {
	gone := filepath.Join(t.TempDir(), "gone")
	if err := os.Mkdir(gone, 0o755); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		done <- Dir(context.Background(), gone, nil, 10*time.Millisecond, func() error { close(started); return nil })
	}()
	<-started
	if err := os.Remove(gone); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "removed") {
			t.Fatalf("removed folder: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Dir did not stop when its folder was removed")
	}

	boom := errors.New("boom")
	if err := Dir(context.Background(), t.TempDir(), nil, time.Millisecond, func() error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("callback error: got %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 3s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
