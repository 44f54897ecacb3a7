package manifest

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/core/internal/translate"
	"github.com/sluicegw/sluice/core/internal/watch"
)

// DefaultHoldOff is the hold-off Watch uses when given zero or less.
const DefaultHoldOff = 100 * time.Millisecond

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
	var last [sha256.Size]byte
	first := true
	err := watch.Dir(ctx, dir, nil, holdOff, func() error {
		in, warns, sum, err := load(dir)
		if err != nil {
			return err
		}
		if !first && sum == last {
			return nil
		}
		first, last = false, sum
		onChange(in, warns)
		return nil
	})
	if err != nil {
		return fmt.Errorf("manifest dir %q: %w", dir, err)
	}
	return nil
}
