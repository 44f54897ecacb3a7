package secretstore_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/caddyserver/certmagic"

	"github.com/sluicegw/sluice/internal/kubetest"
)

// BenchmarkStorage compares the Secret storage on a real API server with
// certmagic.FileStorage (the baseline) on what an issuance does: Store and
// Load of a certificate-sized value, Stat, and a Lock/Unlock pair.
func BenchmarkStorage(b *testing.B) {
	c := kubetest.Start(b)
	value := bytes.Repeat([]byte("x"), 4<<10)
	ctx := context.Background()
	for _, impl := range []struct {
		name string
		new  func(b *testing.B) certmagic.Storage
	}{
		{"file", func(b *testing.B) certmagic.Storage { return &certmagic.FileStorage{Path: b.TempDir()} }},
		{"secrets", func(b *testing.B) certmagic.Storage { return open(b, c.Kubeconfig+"|"+newNamespace(b, c.Client)) }},
	} {
		b.Run(impl.name+"/Store", func(b *testing.B) {
			s := impl.new(b)
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Store(ctx, "certificates/ca/h.test/h.test.crt", value); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(impl.name+"/Load", func(b *testing.B) {
			s := impl.new(b)
			if err := s.Store(ctx, "certificates/ca/h.test/h.test.crt", value); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Load(ctx, "certificates/ca/h.test/h.test.crt"); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(impl.name+"/LockUnlock", func(b *testing.B) {
			s := impl.new(b)
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Lock(ctx, "issue_cert_h.test"); err != nil {
					b.Fatal(err)
				}
				if err := s.Unlock(ctx, "issue_cert_h.test"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
