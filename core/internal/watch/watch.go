// Package watch reports changes to files in a directory, batched.
package watch

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Dir calls onChange after files in dir that match change, once per burst:
// each event restarts a hold-off timer, and onChange runs when it expires.
// It watches the directory, not the files, so editors that replace a file
// by renaming a new one over it are seen. It blocks until ctx is done and
// returns nil then; it returns an error only when the watch cannot start.
// onChange runs on Dir's goroutine, one call at a time.
func Dir(ctx context.Context, dir string, match func(name string) bool, holdOff time.Duration, onChange func()) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", dir, err)
	}
	defer w.Close()
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("watch %s: %w", dir, err)
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if match == nil || match(filepath.Base(ev.Name)) {
				timer.Reset(holdOff)
			}
		case _, ok := <-w.Errors:
			if !ok {
				return nil
			}
			// An overflow loses events: reload to be sure.
			timer.Reset(holdOff)
		case <-timer.C:
			onChange()
		}
	}
}
