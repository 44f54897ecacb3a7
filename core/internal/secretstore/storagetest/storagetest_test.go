package storagetest_test

import (
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/sluicegw/sluice/core/internal/secretstore/storagetest"
)

// certmagic's own FileStorage meets the same contract as the Secret
// storage (the suite is not tailored to one implementation).
func TestFileStorage(t *testing.T) {
	open := func(t testing.TB, dir string) certmagic.Storage { return &certmagic.FileStorage{Path: dir} }
	if storagetest.IsHelper() {
		storagetest.Helper(t, open)
		return
	}
	storagetest.Run(t, storagetest.Factory{
		New: func(t testing.TB) (certmagic.Storage, string) {
			dir := t.TempDir()
			return open(t, dir), dir
		},
		Open: open,
		// FileStorage refreshes a lock every 5 s and deems it stale after
		// 10 s; waiters poll every second.
		Expiry: 11 * time.Second,
	})
}
