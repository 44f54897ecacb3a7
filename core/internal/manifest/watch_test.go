package manifest

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/core/internal/translate"
)

// seenWithin is how soon a change must be delivered.
const seenWithin = time.Second

// testHoldOff keeps the tests quick.
const testHoldOff = 20 * time.Millisecond

func service(name string) string {
	return "apiVersion: v1\nkind: Service\nmetadata: {name: " + name + "}\nspec: {ports: [{port: 80}]}\n"
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// watcher runs Watch in the background and collects what it delivers.
type watcher struct {
	updates chan []string
	done    chan error
	cancel  context.CancelFunc
}

func startWatch(t *testing.T, dir string) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{updates: make(chan []string, 100), done: make(chan error, 1), cancel: cancel}
	go func() {
		w.done <- Watch(ctx, dir, testHoldOff, func(in translate.Input, _ []model.Warning) {
			w.updates <- names(in)
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-w.done
	})
	return w
}

// next waits up to seenWithin for the next delivery.
func (w *watcher) next(t *testing.T, what string) []string {
	t.Helper()
	select {
	case got := <-w.updates:
		return got
	case err := <-w.done:
		t.Fatalf("%s: Watch returned %v", what, err)
	case <-time.After(seenWithin):
		t.Fatalf("%s: not seen within %v", what, seenWithin)
	}
	return nil
}

// expectNext checks the very next delivery.
func (w *watcher) expectNext(t *testing.T, what string, want ...string) {
	t.Helper()
	if got := w.next(t, what); !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: got %q, want %q", what, got, want)
	}
}

// expect waits up to seenWithin for a delivery of want. Earlier deliveries
// are allowed: os.WriteFile truncates before it writes, and a slow machine
// may reload in between.
func (w *watcher) expect(t *testing.T, what string, want ...string) {
	t.Helper()
	deadline := time.After(seenWithin)
	var last []string
	for {
		select {
		case got := <-w.updates:
			if reflect.DeepEqual(got, want) {
				return
			}
			last = got
		case err := <-w.done:
			t.Fatalf("%s: Watch returned %v", what, err)
		case <-deadline:
			t.Fatalf("%s: %q not seen within %v (last delivery %q)", what, want, seenWithin, last)
		}
	}
}

// replaceFile writes path atomically, the way many editors save: a
// temporary file renamed over the old one.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	writeFile(t, tmp, content)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestWatch(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.yaml")
	writeFile(t, a, service("one"))
	w := startWatch(t, dir)
	w.expectNext(t, "initial load", "Service default/one")

	writeFile(t, a, service("two"))
	w.expect(t, "edit in place", "Service default/two")

	replaceFile(t, a, service("three"))
	w.expectNext(t, "rename-replace", "Service default/three")

	// A change of the file's times alone delivers nothing: the next
	// delivery is the file added after it.
	now := time.Now()
	if err := os.Chtimes(a, now, now); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * testHoldOff)
	replaceFile(t, filepath.Join(dir, "b.yml"), service("four"))
	w.expectNext(t, "new file after a touch", "Service default/three", "Service default/four")

	if err := os.Remove(a); err != nil {
		t.Fatal(err)
	}
	w.expectNext(t, "file removed", "Service default/four")

	// A burst of writes ends in one state.
	for i := range 20 {
		writeFile(t, a, service("burst-"+string(rune('a'+i))))
	}
	w.expect(t, "burst", "Service default/burst-t", "Service default/four")
}

func TestWatchReturns(t *testing.T) {
	before := runtime.NumGoroutine()

	// Cancelled: nil.
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	calls := make(chan struct{}, 10)
	go func() {
		done <- Watch(ctx, dir, 0, func(translate.Input, []model.Warning) { calls <- struct{}{} })
	}()
	select {
	case <-calls:
	case <-time.After(seenWithin):
		t.Fatal("no initial delivery")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Watch after cancel = %v, want nil", err)
	}

	// A missing folder: an error at once, and no delivery.
	err := Watch(context.Background(), filepath.Join(dir, "missing"), 0, func(translate.Input, []model.Warning) {
		t.Error("onChange called for a missing folder")
	})
	if err == nil {
		t.Error("Watch of a missing folder = nil, want an error")
	}

	// The folder removed while watched: an error.
	gone := filepath.Join(t.TempDir(), "gone")
	if err := os.Mkdir(gone, 0o755); err != nil {
		t.Fatal(err)
	}
	go func() {
		done <- Watch(context.Background(), gone, testHoldOff, func(translate.Input, []model.Warning) { calls <- struct{}{} })
	}()
	<-calls
	if err := os.Remove(gone); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Error("Watch of a removed folder = nil, want an error")
		}
	case <-time.After(seenWithin):
		t.Fatal("Watch did not return after its folder was removed")
	}

	// No goroutine left behind (fsnotify's reader, timers).
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWatchConfigMapVolume swaps a symlink the way the kubelet updates a
// ConfigMap volume: a.yaml -> ..data/a.yaml, and ..data is replaced by a
// rename. No a.yaml event happens, yet the change must be seen.
func TestWatchConfigMapVolume(t *testing.T) {
	dir := t.TempDir()
	for _, v := range []string{"..v1", "..v2"} {
		if err := os.Mkdir(filepath.Join(dir, v), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(dir, "..v1", "a.yaml"), service("one"))
	writeFile(t, filepath.Join(dir, "..v2", "a.yaml"), service("two"))
	symlink := func(target, name string) {
		t.Helper()
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	symlink("..v1", "..data")
	symlink(filepath.Join("..data", "a.yaml"), "a.yaml")

	w := startWatch(t, dir)
	w.expectNext(t, "initial load", "Service default/one")

	symlink("..v2", "..data_tmp")
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	w.expectNext(t, "symlink swap", "Service default/two")
}
