package core

import (
	"context"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/sluicegw/sluice/core/internal/certstore"
	"github.com/sluicegw/sluice/core/internal/config"
	"github.com/sluicegw/sluice/core/internal/metrics"
	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/core/internal/tlsmgr"
	"github.com/sluicegw/sluice/internal/testcert"
	"github.com/sluicegw/sluice/wasm"
)

// failingStore refuses every take, like an unreachable Redis.
type failingStore struct{ wasm.Store }

func (failingStore) Take(context.Context, string, wasm.Limit) (wasm.Decision, error) {
	return wasm.Decision{}, errors.New("redis: connection refused")
}

func TestCountingStore(t *testing.T) {
	g := &Gateway{}
	g.obs.metrics = metrics.New()
	s := g.observeStore(nil) // the in-memory store
	l := wasm.Limit{Rate: 1, Period: time.Hour, Burst: 2}
	ctx := context.Background()
	for i, want := range []bool{true, true, false} {
		d, err := s.Take(ctx, "ratelimit/ip:10.0.0.1", l)
		if err != nil || d.Allowed != want {
			t.Fatalf("take %d: %+v, %v; want allowed=%v", i, d, err, want)
		}
	}
	if _, err := g.observeStore(failingStore{}).Take(ctx, "k", l); err == nil {
		t.Fatal("the wrapped store's error was lost")
	}
	fams, err := g.obs.metrics.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		if f.GetName() == "sluice_ratelimit_decisions_total" {
			for _, m := range f.Metric {
				got[m.Label[0].GetValue()] = m.Counter.GetValue()
			}
		}
	}
	if got["allowed"] != 2 || got["denied"] != 1 || got["error"] != 1 {
		t.Errorf("decisions %v, want allowed 2, denied 1, error 1", got)
	}
	// Without metrics (sluice check) the store is passed through.
	if s := (&Gateway{}).observeStore(nil); s != nil {
		t.Errorf("observeStore without metrics = %T, want nil", s)
	}
}

func TestStoredCertificates(t *testing.T) {
	dir := t.TempDir()
	ca, err := testcert.CA("Test Issuing CA")
	if err != nil {
		t.Fatal(err)
	}
	notAfter := time.Now().Add(30 * 24 * time.Hour).Truncate(time.Second)
	put := func(issuer, name string) {
		leaf, err := testcert.Leaf(ca, []string{name}, testcert.Options{NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter})
		if err != nil {
			t.Fatal(err)
		}
		d := filepath.Join(dir, "certificates", issuer, name)
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		writeTestFile(t, filepath.Join(d, name+".crt"), leaf.CertPEM)
		writeTestFile(t, filepath.Join(d, name+".key"), leaf.KeyPEM)
		writeTestFile(t, filepath.Join(d, name+".json"), []byte("{}"))
	}
	put("sluice-local", "shop.example")
	put("acme-v02.example-directory", "od.example")
	// Garbage next to them is skipped, not fatal.
	writeTestFile(t, filepath.Join(dir, "certificates", "sluice-local", "bad.crt"), []byte("not a certificate"))

	got := storedCertificates(&certmagic.FileStorage{Path: dir}, noCache, map[string]bool{"shop.example": true})
	if len(got) != 2 {
		t.Fatalf("%d certificates, want 2: %+v", len(got), got)
	}
	byName := map[string]servedCert{}
	for _, c := range got {
		byName[c.names[0]] = c
	}
	if c := byName["shop.example"]; c.kind != "managed" || c.issuer != "Test Issuing CA" || !c.notAfter.Equal(notAfter) ||
		c.source != "storage certificates/sluice-local/shop.example/shop.example.crt" {
		t.Errorf("managed: %+v", c)
	}
	if c := byName["od.example"]; c.kind != "on_demand" || !slices.Equal(c.names, []string{"od.example"}) {
		t.Errorf("on demand: %+v", c)
	}
	if got := storedCertificates(&certmagic.FileStorage{Path: filepath.Join(dir, "missing")}, noCache, nil); got != nil {
		t.Errorf("a missing storage: %+v, want none", got)
	}
}

func noCache(string) *x509.Certificate { return nil }

// countingStorage counts Loads.
type countingStorage struct {
	certmagic.Storage
	loads atomic.Int64
}

func (s *countingStorage) Load(ctx context.Context, key string) ([]byte, error) {
	s.loads.Add(1)
	return s.Storage.Load(ctx, key)
}

// TestStoredCertificatesFromCache: a certificate the manager holds in
// memory is not loaded from the storage (with Secrets, a GET each); a
// wildcard's storage key ("wildcard_.") is its name ("*.").
func TestStoredCertificatesFromCache(t *testing.T) {
	dir := t.TempDir()
	ca, err := testcert.CA("Test Issuing CA")
	if err != nil {
		t.Fatal(err)
	}
	put := func(name, keyName string) *x509.Certificate {
		leaf, err := testcert.Leaf(ca, []string{name}, testcert.Options{})
		if err != nil {
			t.Fatal(err)
		}
		d := filepath.Join(dir, "certificates", "sluice-local", keyName)
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		writeTestFile(t, filepath.Join(d, keyName+".crt"), leaf.CertPEM)
		return leaf.Cert
	}
	inMemory := put("cached.example", "cached.example")
	put("*.w.example", "wildcard_.w.example")
	st := &countingStorage{Storage: &certmagic.FileStorage{Path: dir}}
	cached := func(name string) *x509.Certificate {
		if name == "cached.example" {
			return inMemory
		}
		return nil
	}
	got := storedCertificates(st, cached, map[string]bool{"cached.example": true, "*.w.example": true})
	if len(got) != 2 {
		t.Fatalf("%d certificates, want 2: %+v", len(got), got)
	}
	if n := st.loads.Load(); n != 1 {
		t.Errorf("%d storage loads, want 1 (the cached certificate is read from memory)", n)
	}
	for _, c := range got {
		if c.kind != "managed" {
			t.Errorf("%v: kind %q, want managed", c.names, c.kind)
		}
	}
}

func writeTestFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestServedCertificates: static certificates come from the served state
// (Secrets and tls.certificates files), managed ones from the storage; the
// list is cached until the state changes.
func TestServedCertificates(t *testing.T) {
	ca, err := testcert.CA("Secret CA")
	if err != nil {
		t.Fatal(err)
	}
	notAfter := time.Now().Add(200 * 24 * time.Hour).Truncate(time.Second)
	leaf, err := testcert.Leaf(ca, []string{"static.example", "www.static.example"}, testcert.Options{NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter})
	if err != nil {
		t.Fatal(err)
	}
	snap := &model.Snapshot{
		Hosts: []*model.VirtualHost{{Name: "static.example", TLS: true}, {Name: "managed.example", TLS: true}},
		Certificates: []*model.Certificate{{Source: model.ObjectRef{Kind: "Secret", Namespace: "default", Name: "static-tls"},
			Hosts: []string{"static.example"}, NotAfter: notAfter, CertPEM: leaf.CertPEM, KeyPEM: leaf.KeyPEM}},
	}
	certs, errs := certstore.Build(snap.Certificates)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	storage := t.TempDir()
	mgr, err := tlsmgr.New(tlsmgr.Options{Issuer: "local", StoragePath: storage})
	if err != nil {
		t.Fatal(err)
	}
	g := &Gateway{}
	g.tls.mgr = mgr
	st := &state{cfg: config.Default(), snap: snap, certs: certs}
	g.live.Store(st)
	got := g.servedCertificates()
	if len(got) != 1 {
		t.Fatalf("%d certificates, want the static one: %+v", len(got), got)
	}
	if c := got[0]; c.kind != "static" || c.source != "Secret default/static-tls" || c.issuer != "Secret CA" ||
		!slices.Equal(c.names, []string{"static.example", "www.static.example"}) || !c.notAfter.Equal(notAfter) {
		t.Errorf("static: %+v", c)
	}
	// The managed certificate appears in the storage: seen after the cache
	// (same state) expires or the state changes.
	mleaf, err := testcert.Leaf(ca, []string{"managed.example"}, testcert.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := filepath.Join(storage, "certificates", "sluice-local", "managed.example")
	if err := os.MkdirAll(d, 0o700); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(d, "managed.example.crt"), mleaf.CertPEM)
	if n := len(g.servedCertificates()); n != 1 {
		t.Errorf("%d certificates from the cache, want 1", n)
	}
	next := *st
	g.live.Store(&next)
	got = g.servedCertificates()
	if len(got) != 2 || got[1].kind != "managed" || got[1].names[0] != "managed.example" {
		t.Errorf("after a new state: %+v", got)
	}
}

// blockingStorage is a FileStorage whose List waits for release, like a
// Secret storage on a slow or rate-limited API server.
type blockingStorage struct {
	certmagic.FileStorage
	listing chan struct{} // closed when List is entered
	release chan struct{}
}

func (s *blockingStorage) List(ctx context.Context, prefix string, recursive bool) ([]string, error) {
	close(s.listing)
	<-s.release
	return s.FileStorage.List(ctx, prefix, recursive)
}

// A scrape that reads the certificate storage does not hold up the
// control loop: recording a build (and /api/warnings) does not wait for
// the storage.
func TestServedCertificatesDoNotBlockBuilds(t *testing.T) {
	storage := &blockingStorage{FileStorage: certmagic.FileStorage{Path: t.TempDir()}, listing: make(chan struct{}), release: make(chan struct{})}
	mgr, err := tlsmgr.New(tlsmgr.Options{Issuer: "local", Storage: storage})
	if err != nil {
		t.Fatal(err)
	}
	g := &Gateway{}
	g.tls.mgr = mgr
	g.obs.metrics = metrics.New()
	st := &state{cfg: config.Default(), snap: &model.Snapshot{}}
	g.live.Store(st)
	scraped := make(chan struct{})
	go func() {
		defer close(scraped)
		g.servedCertificates()
	}()
	<-storage.listing
	built := make(chan struct{})
	go func() {
		defer close(built)
		g.observeBuild(st, time.Millisecond, errors.New("refused"))
		adminViews{g}.Warnings()
	}()
	select {
	case <-built:
	case <-time.After(10 * time.Second):
		t.Error("observeBuild waited for the certificate storage")
	}
	close(storage.release)
	<-scraped
	<-built
}
