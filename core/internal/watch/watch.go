// Package watch reports changes to files in a directory, batched.
package watch

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// maxHoldOffFactor bounds how long a stream of events can delay a call: at
// most this many hold-offs after the first event of a burst.
const maxHoldOffFactor = 10

// Dir calls onChange once as soon as the watch on dir is in place (so no
// change can fall between a first read and the watch), then once after each
// burst of changes to files whose base name match accepts (nil: any file).
// A burst ends when no event arrived for holdOff, or at most 10×holdOff
// after its first event.
//
// It watches the directory, not the files, so editors that save by renaming
// a new file over the old one are seen, and so are Kubernetes ConfigMap
// volumes, which swap a symlink; a lost-events overflow also triggers a
// call. onChange runs on Dir's goroutine, one call at a time; an error from
// it stops Dir and is returned. Dir returns nil when ctx is done, and an
// error when dir cannot be watched or is removed or renamed. It leaves no
// goroutine behind.
func Dir(ctx context.Context, dir string, match func(name string) bool, holdOff time.Duration, onChange func() error) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", dir, err)
	}
	defer w.Close()
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("watch %s: %w", dir, err)
	}
	if err := onChange(); err != nil {
		return err
	}

	self := filepath.Clean(dir)
	timer := time.NewTimer(time.Hour)
	timer.Stop() // since Go 1.23, a stopped timer delivers nothing stale
	defer timer.Stop()
	var pending bool       // a call is scheduled
	var deadline time.Time // latest time the scheduled call may run
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
				return fmt.Errorf("watch %s: closed", dir)
			}
			if filepath.Clean(ev.Name) == self && ev.Has(fsnotify.Remove|fsnotify.Rename) {
				return fmt.Errorf("watch %s: the folder was removed or renamed", dir)
			}
			if match == nil || match(filepath.Base(ev.Name)) {
				schedule()
			}
		case err, ok := <-w.Errors:
			if !ok {
				return fmt.Errorf("watch %s: closed", dir)
			}
			if !errors.Is(err, fsnotify.ErrEventOverflow) {
				return fmt.Errorf("watch %s: %w", dir, err)
			}
			schedule() // events were lost: the caller reads everything again
		case <-timer.C:
			pending = false
			if err := onChange(); err != nil {
				return err
			}
		}
	}
}
