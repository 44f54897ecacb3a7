package tlsmgr

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
)

// Storage keys of the local CA. They sit beside certmagic's own keys in the
// same storage, so a shared (cluster) storage shares the CA too.
const (
	localCAPrefix    = "sluice/local_ca/"
	keyRootCert      = localCAPrefix + "root.crt"
	keyRootKey       = localCAPrefix + "root.key"
	keyInterCert     = localCAPrefix + "intermediate.crt"
	keyInterKey      = localCAPrefix + "intermediate.key"
	localCALock      = "sluice_local_ca"
	localIssuerKey   = "sluice-local"
	rootLifetime     = 10 * 365 * 24 * time.Hour
	interLifetime    = 365 * 24 * time.Hour
	leafLifetime     = 7 * 24 * time.Hour
	clockSkewAllowed = time.Minute
)

// LocalCA is a certmagic.Issuer that signs certificates with a root and an
// intermediate kept in certmagic storage. The first use generates both
// (under a storage lock, so replicas sharing storage agree on one CA); the
// intermediate is renewed when a third of its lifetime is left.
//
// It is safe for concurrent use. NewLocalCA has no side effects; the CA is
// loaded or generated on first use.
type LocalCA struct {
	storage  certmagic.Storage
	now      func() time.Time
	leafLife time.Duration // leafLifetime; tests shorten it

	mu    sync.Mutex
	root  *x509.Certificate
	inter *x509.Certificate
	key   crypto.Signer // the intermediate's
}

// NewLocalCA returns the local CA kept in storage.
func NewLocalCA(storage certmagic.Storage) *LocalCA {
	return &LocalCA{storage: storage, now: time.Now, leafLife: leafLifetime}
}

// IssuerKey implements certmagic.Issuer.
func (ca *LocalCA) IssuerKey() string { return localIssuerKey }

// RootPEM returns the root certificate, generating the CA if storage has
// none yet. This is what clients must trust (`sluice ca export`).
func (ca *LocalCA) RootPEM(ctx context.Context) ([]byte, error) {
	if err := ca.load(ctx); err != nil {
		return nil, err
	}
	ca.mu.Lock()
	defer ca.mu.Unlock()
	return pemCert(ca.root.Raw), nil
}

// Root returns the root certificate (see RootPEM).
func (ca *LocalCA) Root(ctx context.Context) (*x509.Certificate, error) {
	if err := ca.load(ctx); err != nil {
		return nil, err
	}
	ca.mu.Lock()
	defer ca.mu.Unlock()
	return ca.root, nil
}

// Issue implements certmagic.Issuer: it signs the CSR's DNS names and IP
// addresses for leafLifetime and returns the leaf and the intermediate.
func (ca *LocalCA) Issue(ctx context.Context, csr *x509.CertificateRequest) (*certmagic.IssuedCertificate, error) {
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("local ca: csr signature: %w", err)
	}
	if len(csr.DNSNames) == 0 && len(csr.IPAddresses) == 0 {
		return nil, errors.New("local ca: csr names no DNS name or IP address")
	}
	if err := ca.load(ctx); err != nil {
		return nil, err
	}
	ca.mu.Lock()
	inter, key := ca.inter, ca.key
	ca.mu.Unlock()

	now := ca.now()
	notAfter := now.Add(ca.leafLife)
	if notAfter.After(inter.NotAfter) {
		notAfter = inter.NotAfter
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("local ca: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: firstName(csr)},
		DNSNames:     csr.DNSNames,
		IPAddresses:  csr.IPAddresses,
		NotBefore:    now.Add(-min(clockSkewAllowed, ca.leafLife/10)),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, inter, csr.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("local ca: sign %s: %w", tmpl.Subject.CommonName, err)
	}
	chain := append(pemCert(der), pemCert(inter.Raw)...)
	return &certmagic.IssuedCertificate{Certificate: chain}, nil
}

func firstName(csr *x509.CertificateRequest) string {
	if len(csr.DNSNames) > 0 {
		return csr.DNSNames[0]
	}
	return csr.IPAddresses[0].String()
}

// load makes sure ca holds a usable root and intermediate: from memory,
// else from storage, else newly generated and stored.
func (ca *LocalCA) load(ctx context.Context) error {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if ca.inter != nil && !ca.interDue() {
		return nil
	}
	if err := ca.storage.Lock(ctx, localCALock); err != nil {
		return fmt.Errorf("local ca: lock storage: %w", err)
	}
	defer ca.storage.Unlock(context.WithoutCancel(ctx), localCALock)

	root, rootKey, err := loadPair(ctx, ca.storage, keyRootCert, keyRootKey)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		root, rootKey, err = newCA(ca.now(), "Sluice Local Root CA", rootLifetime, nil, nil)
		if err == nil {
			err = storePair(ctx, ca.storage, keyRootCert, keyRootKey, root, rootKey)
		}
		if err != nil {
			return fmt.Errorf("local ca: root: %w", err)
		}
	case err != nil:
		return fmt.Errorf("local ca: root: %w", err)
	}
	ca.root = root

	inter, interKey, err := loadPair(ctx, ca.storage, keyInterCert, keyInterKey)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("local ca: intermediate: %w", err)
	}
	ca.inter, ca.key = inter, interKey
	if err != nil || ca.interDue() || inter.CheckSignatureFrom(root) != nil {
		inter, interKey, err = newCA(ca.now(), "Sluice Local Intermediate CA", interLifetime, root, rootKey)
		if err == nil {
			err = storePair(ctx, ca.storage, keyInterCert, keyInterKey, inter, interKey)
		}
		if err != nil {
			ca.inter, ca.key = nil, nil
			return fmt.Errorf("local ca: intermediate: %w", err)
		}
		ca.inter, ca.key = inter, interKey
	}
	return nil
}

// interDue reports whether the intermediate has a third of its life left
// or less. Callers hold ca.mu and ca.inter is not nil.
func (ca *LocalCA) interDue() bool {
	life := ca.inter.NotAfter.Sub(ca.inter.NotBefore)
	return ca.inter.NotAfter.Sub(ca.now()) < life/3
}

func newCA(now time.Time, cn string, life time.Duration, parent *x509.Certificate, parentKey crypto.Signer) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Sluice"}},
		NotBefore:             now.Add(-clockSkewAllowed),
		NotAfter:              now.Add(life),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	if parent == nil {
		parent, parentKey = tmpl, key
		tmpl.MaxPathLen = 1
	} else {
		tmpl.MaxPathLenZero = true
		if tmpl.NotAfter.After(parent.NotAfter) {
			tmpl.NotAfter = parent.NotAfter
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func loadPair(ctx context.Context, s certmagic.Storage, certKey, keyKey string) (*x509.Certificate, crypto.Signer, error) {
	certPEM, err := s.Load(ctx, certKey)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := s.Load(ctx, keyKey)
	if err != nil {
		return nil, nil, err
	}
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, nil, fmt.Errorf("%s: no CERTIFICATE PEM block", certKey)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", certKey, err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, nil, fmt.Errorf("%s: no PEM block", keyKey)
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", keyKey, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("%s: %T is not a signing key", keyKey, k)
	}
	return cert, signer, nil
}

func storePair(ctx context.Context, s certmagic.Storage, certKey, keyKey string, cert *x509.Certificate, key crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	// The key first: a certificate in storage always has its key.
	if err := s.Store(ctx, keyKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		return err
	}
	return s.Store(ctx, certKey, pemCert(cert.Raw))
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func randomSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// Interface guards.
var _ certmagic.Issuer = (*LocalCA)(nil)
