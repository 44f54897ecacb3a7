package manifest

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/core/internal/translate"
)

// DefaultHoldOff is the hold-off Watch uses when given zero or less.
const DefaultHoldOff = 100 * time.Millisecond

// maxHoldOffFactor bounds how long a stream of events can delay a reload:
// at most this many hold-offs after the first event of a batch.
const maxHoldOffFactor = 10

// Watch watches dir and calls onChange with a full reload (as Load returns
// it) whenever the manifest files change.
//
// The first call to onChange is the initial contents, loaded after the watch
// is in place so that no edit can fall between the two. After that, events
// are batched: a reload happens once no event arrived for holdOff (at most
// 10×holdOff after the first event of a burst), and onChange is called only
// when the bytes of the files read differ from the last delivery. Zero or
// less holdOff means DefaultHoldOff.
//
// The folder is watched, not the files, so editors that save by writing a
// new file and renaming it over the old one are seen, and so are Kubernetes
// ConfigMap volumes, which swap a symlink.
//
// onChange is called from the goroutine running Watch, one call at a time;
// Watch waits while it runs. Watch returns nil when ctx is done, and an
// error when dir cannot be read or watched, or is removed or renamed. It
// leaves no goroutine behind.
func Watch(ctx context.Context, dir string, holdOff time.Duration, onChange func(translate.Input, []model.Warning)) error {
	if holdOff <= 0 {
		holdOff = DefaultHoldOff
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("manifest dir %q: watch: %w", dir, err)
	}
	defer w.Close()
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("manifest dir %q: watch: %w", dir, err)
	}
	in, warns, last, err := load(dir)
	if err != nil {
		return err
	}
	onChange(in, warns)

	self := filepath.Clean(dir)
	timer := time.NewTimer(time.Hour)
	timer.Stop() // since Go 1.23, a stopped timer delivers nothing stale
	defer timer.Stop()
	var pending bool       // a reload is scheduled
	var deadline time.Time // latest time the scheduled reload may run
	schedule := func() {
		now := time.Now()
		if !pending {
			pending = true
			deadline = now.Add(maxHoldOffFactor * holdOff)
		}
		timer.Reset(min(holdOff, deadline.Sub(now)))
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return fmt.Errorf("manifest dir %q: watch closed", dir)
			}
			if filepath.Clean(ev.Name) == self && ev.Has(fsnotify.Remove|fsnotify.Rename) {
				return fmt.Errorf("manifest dir %q: removed or renamed; watch stopped", dir)
			}
			schedule()
		case err, ok := <-w.Errors:
			if !ok {
				return fmt.Errorf("manifest dir %q: watch closed", dir)
			}
			if !errors.Is(err, fsnotify.ErrEventOverflow) {
				return fmt.Errorf("manifest dir %q: watch: %w", dir, err)
			}
			schedule() // events were lost: a full reload catches up
		case <-timer.C:
			pending = false
			in, warns, sum, err := load(dir)
			if err != nil {
				return err
			}
			if sum == last {
				continue
			}
			last = sum
			onChange(in, warns)
		}
	}
}
