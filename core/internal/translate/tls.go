package translate

import (
	"bytes"
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/sluicegw/sluice/core/internal/model"
)

// certEntry is one Secret's certificate, loaded once per translation.
type certEntry struct {
	cert  *model.Certificate // nil when the Secret is unusable
	leaf  *x509.Certificate
	msg   string // why cert is nil, or a problem that does not stop serving it
	hosts map[string]bool
}

// addTLS records spec.tls[i] of ing: its hosts get TLS (whatever happens to
// the Secret, so that a managed certificate can take over), and its Secret,
// when usable, becomes a static certificate for those hosts.
func (b *builder) addTLS(ing *networkingv1.Ingress, src model.ObjectRef, i int) {
	t := &ing.Spec.TLS[i]
	hosts := make([]string, 0, len(t.Hosts))
	for j, h := range t.Hosts {
		host, err := normalizeHost(h)
		if err == nil && host == "" {
			err = errors.New("must not be empty")
		}
		if err != nil {
			b.warn(src, fmt.Sprintf("spec.tls[%d].hosts[%d] %q: %v; host ignored", i, j, h, err))
			continue
		}
		hosts = append(hosts, host)
		b.tlsHosts[host] = true
	}
	if t.SecretName == "" {
		return // the default certificate of the listener
	}
	e := b.certificate(ing.Namespace, t.SecretName)
	if e.msg != "" {
		b.warn(src, fmt.Sprintf("spec.tls[%d].secretName: %s", i, e.msg))
	}
	if e.cert == nil {
		return
	}
	for j, h := range hosts {
		if !leafCovers(e.leaf, h) {
			names := strings.Join(e.leaf.DNSNames, ", ")
			if names == "" {
				names = "none"
			}
			b.warn(src, fmt.Sprintf("spec.tls[%d].hosts[%d] %q: not covered by the certificate of %s (names: %s); not served with it",
				i, j, h, e.cert.Source, names))
			continue
		}
		e.hosts[h] = true
	}
}

// certificate loads the Secret ns/name once.
func (b *builder) certificate(ns, name string) *certEntry {
	k := nsName{ns, name}
	if e, ok := b.certs[k]; ok {
		return e
	}
	e := &certEntry{hosts: make(map[string]bool)}
	b.certs[k] = e
	sref := model.ObjectRef{Kind: "Secret", Namespace: ns, Name: name}
	s := b.secrets[k]
	if s == nil {
		e.msg = sref.String() + " not found; no static certificate for these hosts"
		return e
	}
	if s.Type != corev1.SecretTypeTLS {
		e.msg = fmt.Sprintf("%s has type %q, want %q; not used", sref, string(s.Type), string(corev1.SecretTypeTLS))
		return e
	}
	crt, key := s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey]
	if len(crt) == 0 || len(key) == 0 {
		e.msg = fmt.Sprintf("%s: data[%q] and data[%q] are required; not used", sref, corev1.TLSCertKey, corev1.TLSPrivateKeyKey)
		return e
	}
	pair, err := tls.X509KeyPair(crt, key)
	if err != nil {
		e.msg = fmt.Sprintf("%s: %v; not used", sref, err)
		return e
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			e.msg = fmt.Sprintf("%s: %v; not used", sref, err)
			return e
		}
	}
	switch {
	case b.now.After(leaf.NotAfter):
		e.msg = fmt.Sprintf("%s: certificate expired at %s; served anyway", sref, leaf.NotAfter.UTC().Format(time.RFC3339))
	case b.now.Before(leaf.NotBefore):
		e.msg = fmt.Sprintf("%s: certificate is not valid before %s; served anyway", sref, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	e.leaf = leaf
	e.cert = &model.Certificate{
		Source:   sref,
		NotAfter: leaf.NotAfter.UTC(),
		CertPEM:  bytes.Clone(crt),
		KeyPEM:   bytes.Clone(key),
	}
	return e
}

// leafCovers reports whether the certificate is valid for host; for a
// wildcard host, the certificate must carry the same wildcard.
func leafCovers(leaf *x509.Certificate, host string) bool {
	if strings.HasPrefix(host, "*.") {
		return slices.ContainsFunc(leaf.DNSNames, func(n string) bool { return strings.EqualFold(n, host) })
	}
	return leaf.VerifyHostname(host) == nil
}

// certificates returns the usable certificates, sorted by Source.
func (b *builder) certificates() []*model.Certificate {
	var out []*model.Certificate
	for _, e := range b.certs {
		if e.cert == nil {
			continue
		}
		e.cert.Hosts = make([]string, 0, len(e.hosts))
		for h := range e.hosts {
			e.cert.Hosts = append(e.cert.Hosts, h)
		}
		slices.Sort(e.cert.Hosts)
		out = append(out, e.cert)
	}
	slices.SortFunc(out, func(x, y *model.Certificate) int {
		if c := cmp.Compare(x.Source.Namespace, y.Source.Namespace); c != 0 {
			return c
		}
		return cmp.Compare(x.Source.Name, y.Source.Name)
	})
	return out
}
