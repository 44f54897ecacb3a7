package tlsmgr

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

func newCSR(t testing.TB, names []string, ips []net.IP) *x509.CertificateRequest {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "ignored"}, DNSNames: names, IPAddresses: ips,
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

func parseChain(t testing.TB, pemData []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for rest := pemData; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return out
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}

func TestLocalCAIssueVerifies(t *testing.T) {
	ctx := context.Background()
	ca := NewLocalCA(&certmagic.FileStorage{Path: t.TempDir()})
	got, err := ca.Issue(ctx, newCSR(t, []string{"a.example.com", "*.b.example.com"}, []net.IP{net.ParseIP("127.0.0.1")}))
	if err != nil {
		t.Fatal(err)
	}
	chain := parseChain(t, got.Certificate)
	if len(chain) != 2 {
		t.Fatalf("chain has %d certificates, want leaf + intermediate", len(chain))
	}
	root, err := ca.Root(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a.example.com", "x.b.example.com", "127.0.0.1"} {
		_, err := chain[0].Verify(x509.VerifyOptions{
			DNSName:       name,
			Roots:         poolOf(root),
			Intermediates: poolOf(chain[1]),
		})
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{DNSName: "c.example.com", Roots: poolOf(root), Intermediates: poolOf(chain[1])}); err == nil {
		t.Error("leaf verifies for a name it does not carry")
	}
	if life := chain[0].NotAfter.Sub(chain[0].NotBefore); life > leafLifetime+2*clockSkewAllowed {
		t.Errorf("leaf lifetime %s, want at most %s", life, leafLifetime)
	}
}

func TestLocalCARefusesBadCSR(t *testing.T) {
	ca := NewLocalCA(&certmagic.FileStorage{Path: t.TempDir()})
	if _, err := ca.Issue(context.Background(), newCSR(t, nil, nil)); err == nil {
		t.Fatal("a CSR without names was signed")
	}
	csr := newCSR(t, []string{"a.example.com"}, nil)
	csr.Signature[len(csr.Signature)-1] ^= 0xff
	if _, err := ca.Issue(context.Background(), csr); err == nil {
		t.Fatal("a CSR with a broken signature was signed")
	}
}

// The root is generated once and kept: a second LocalCA on the same
// storage (a restart, or another replica) serves the same root.
func TestLocalCAPersists(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r1, err := NewLocalCA(&certmagic.FileStorage{Path: dir}).RootPEM(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := NewLocalCA(&certmagic.FileStorage{Path: dir}).RootPEM(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r1, r2) {
		t.Fatal("root changed across instances on the same storage")
	}
	r3, err := NewLocalCA(&certmagic.FileStorage{Path: t.TempDir()}).RootPEM(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(r1, r3) {
		t.Fatal("two storages share a root")
	}
}

// Many instances racing on fresh storage agree on one root (the storage
// lock), and every issued chain verifies against it.
func TestLocalCAHammer(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	const n = 8
	roots := make([][]byte, n)
	chains := make([][]byte, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ca := NewLocalCA(&certmagic.FileStorage{Path: dir})
			for range 2 {
				got, err := ca.Issue(ctx, newCSR(t, []string{"h.example.com"}, nil))
				if err != nil {
					t.Error(err)
					return
				}
				chains[i] = got.Certificate
			}
			r, err := ca.RootPEM(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			roots[i] = r
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	root := parseChain(t, roots[0])[0]
	for i := range n {
		if !bytes.Equal(roots[i], roots[0]) {
			t.Fatalf("instance %d has another root", i)
		}
		c := parseChain(t, chains[i])
		if _, err := c[0].Verify(x509.VerifyOptions{DNSName: "h.example.com", Roots: poolOf(root), Intermediates: poolOf(c[1:]...)}); err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
	}
}

// The intermediate is replaced when a third of its life is left; the root
// stays.
func TestLocalCAIntermediateRenewal(t *testing.T) {
	ctx := context.Background()
	storage := &certmagic.FileStorage{Path: t.TempDir()}
	ca := NewLocalCA(storage)
	first, err := ca.Issue(ctx, newCSR(t, []string{"a.example.com"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	root1, _ := ca.RootPEM(ctx)
	later := NewLocalCA(storage)
	later.now = func() time.Time { return time.Now().Add(interLifetime * 3 / 4) }
	second, err := later.Issue(ctx, newCSR(t, []string{"a.example.com"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	root2, _ := later.RootPEM(ctx)
	if !bytes.Equal(root1, root2) {
		t.Fatal("root replaced with the intermediate")
	}
	i1, i2 := parseChain(t, first.Certificate)[1], parseChain(t, second.Certificate)[1]
	if i1.Equal(i2) {
		t.Fatal("intermediate not renewed at 3/4 of its life")
	}
	if err := i2.CheckSignatureFrom(parseChain(t, root1)[0]); err != nil {
		t.Fatalf("renewed intermediate not signed by the root: %v", err)
	}
}
