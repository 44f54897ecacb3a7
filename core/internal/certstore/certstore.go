// Package certstore selects static certificates by TLS server name.
//
// A Store is immutable: the gateway builds a new one from each snapshot and
// swaps it in atomically, so GetCertificate takes no locks.
package certstore

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/sluicegw/sluice/core/internal/model"
)

// Store maps server names to certificates.
type Store struct {
	exact map[string]*tls.Certificate // "foo.example.com"
	wild  map[string]*tls.Certificate // "example.com" for "*.example.com"
	def   *tls.Certificate            // for handshakes without SNI
}

// Build parses the snapshot's certificates. A certificate that does not parse
// is skipped and reported; the others are still served. Names listed by
// several certificates go to the first one in order.
func Build(certs []*model.Certificate) (*Store, []error) {
	s := &Store{exact: map[string]*tls.Certificate{}, wild: map[string]*tls.Certificate{}}
	var errs []error
	for _, c := range certs {
		kp, err := tls.X509KeyPair(c.CertPEM, c.KeyPEM)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.Source, err))
			continue
		}
		leaf, err := x509.ParseCertificate(kp.Certificate[0])
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.Source, err))
			continue
		}
		kp.Leaf = leaf
		names := append(append([]string(nil), c.Hosts...), leaf.DNSNames...)
		for _, n := range names {
			n = strings.ToLower(strings.TrimSuffix(n, "."))
			if base, ok := strings.CutPrefix(n, "*."); ok {
				if _, dup := s.wild[base]; !dup {
					s.wild[base] = &kp
				}
				continue
			}
			if _, dup := s.exact[n]; !dup && n != "" {
				s.exact[n] = &kp
			}
		}
		if s.def == nil {
			s.def = &kp
		}
	}
	return s, errs
}

// Lookup returns the certificate for a server name: an exact name first,
// then a wildcard one label up. It returns nil when nothing matches.
func (s *Store) Lookup(name string) *tls.Certificate {
	if s == nil {
		return nil
	}
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if c := s.exact[name]; c != nil {
		return c
	}
	if _, parent, ok := strings.Cut(name, "."); ok {
		return s.wild[parent]
	}
	return nil
}

// Covers reports whether the store has a certificate for name; a wildcard
// name ("*.example.com") needs a certificate for that same wildcard.
func (s *Store) Covers(name string) bool {
	if s == nil {
		return false
	}
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if base, ok := strings.CutPrefix(name, "*."); ok {
		return s.wild[base] != nil
	}
	return s.Lookup(name) != nil
}

// ErrNoCertificate is returned for a server name that no certificate covers.
var ErrNoCertificate = errors.New("no certificate")

// GetCertificate is a tls.Config.GetCertificate for this store. A handshake
// without SNI gets the first certificate; an unknown name fails the
// handshake rather than showing a certificate for another host.
func (s *Store) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if hello.ServerName == "" {
		if s != nil && s.def != nil {
			return s.def, nil
		}
		return nil, fmt.Errorf("%w: handshake without server name and no default certificate", ErrNoCertificate)
	}
	if c := s.Lookup(hello.ServerName); c != nil {
		return c, nil
	}
	return nil, fmt.Errorf("%w for server name %q", ErrNoCertificate, hello.ServerName)
}

// Names lists every name the store serves, sorted; wildcards as "*.base".
func (s *Store) Names() []string {
	if s == nil {
		return nil
	}
	out := make([]string, 0, len(s.exact)+len(s.wild))
	for n := range s.exact {
		out = append(out, n)
	}
	for n := range s.wild {
		out = append(out, "*."+n)
	}
	sort.Strings(out)
	return out
}
