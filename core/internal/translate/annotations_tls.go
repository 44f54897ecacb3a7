package translate

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/sluicegw/sluice/core/internal/model"
)

// The per-host TLS annotations. They apply to every host of the Ingress
// (its rules and its spec.tls hosts); when several Ingresses route a host,
// the oldest one that sets any of them decides for the host.
const (
	// AnnotationClientCASecret names a Secret in the Ingress's namespace
	// whose data["ca.crt"] is the client CA bundle (and data["ca.crl"] an
	// optional CRL).
	AnnotationClientCASecret = "sluice.io/client-ca-secret"
	// AnnotationClientVerify is on | optional | optional_no_ca | off.
	AnnotationClientVerify = "sluice.io/client-verify"
	// AnnotationClientVerifyDepth is 1..16.
	AnnotationClientVerifyDepth = "sluice.io/client-verify-depth"
	// AnnotationSSLRedirect is "true" or "false".
	AnnotationSSLRedirect = "sluice.io/ssl-redirect"
	// AnnotationHSTSMaxAge is a number of seconds; 0 sends no HSTS.
	AnnotationHSTSMaxAge = "sluice.io/hsts-max-age"
	// AnnotationOnDemandTLS "false" keeps on-demand issuance off.
	AnnotationOnDemandTLS = "sluice.io/on-demand-tls"

	secretKeyCACert = "ca.crt"
	secretKeyCACRL  = "ca.crl"
)

// tlsAnnotations are the annotations for per-host TLS and mTLS settings that translate honours.
var tlsAnnotations = map[string]bool{
	AnnotationClientCASecret:    true,
	AnnotationClientVerify:      true,
	AnnotationClientVerifyDepth: true,
	AnnotationSSLRedirect:       true,
	AnnotationHSTSMaxAge:        true,
	AnnotationOnDemandTLS:       true,
}

// addHostTLS parses ing's TLS annotations and claims its hosts for them.
// A bad value is a warning and that setting is left at its default.
func (b *builder) addHostTLS(ing *networkingv1.Ingress, src model.ObjectRef) {
	p := b.parseHostTLS(ing, src)
	if p == nil {
		return
	}
	var hosts []string
	for _, r := range ing.Spec.Rules {
		if h, err := normalizeHost(r.Host); err == nil && h != "" {
			hosts = append(hosts, h)
		}
	}
	for _, t := range ing.Spec.TLS {
		for _, h := range t.Hosts {
			if h, err := normalizeHost(h); err == nil && h != "" {
				hosts = append(hosts, h)
			}
		}
	}
	slices.Sort(hosts)
	if b.hostTLS == nil {
		b.hostTLS = map[string]*model.HostTLS{}
	}
	for _, h := range slices.Compact(hosts) {
		prev := b.hostTLS[h]
		if prev == nil {
			b.hostTLS[h] = p
			continue
		}
		if !sameHostTLS(prev, p) {
			b.warn(src, fmt.Sprintf("metadata.annotations: the TLS settings for host %q are already set by %s (the oldest Ingress wins); ignored for this host", h, prev.Source))
		}
	}
}

func sameHostTLS(x, y *model.HostTLS) bool {
	a, c := *x, *y
	a.Source, c.Source = model.ObjectRef{}, model.ObjectRef{}
	return reflect.DeepEqual(a, c)
}

// parseHostTLS returns ing's settings, or nil when it sets none.
func (b *builder) parseHostTLS(ing *networkingv1.Ingress, src model.ObjectRef) *model.HostTLS {
	p := &model.HostTLS{Source: src}
	set := false
	field := func(k string) string { return fmt.Sprintf("metadata.annotations[%q]", k) }
	boolean := func(k string) *bool {
		v, ok := ing.Annotations[k]
		if !ok {
			return nil
		}
		bv, err := strconv.ParseBool(v)
		if err != nil {
			b.warn(src, fmt.Sprintf("%s: %q is not true or false; default used", field(k), v))
			return nil
		}
		set = true
		return &bv
	}
	p.Redirect = boolean(AnnotationSSLRedirect)
	p.OnDemand = boolean(AnnotationOnDemandTLS)
	if v, ok := ing.Annotations[AnnotationHSTSMaxAge]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 || n > 1<<31 {
			b.warn(src, fmt.Sprintf("%s: %q is not a number of seconds; default used", field(AnnotationHSTSMaxAge), v))
		} else {
			d := time.Duration(n) * time.Second
			p.HSTSMaxAge, set = &d, true
		}
	}
	if v, ok := ing.Annotations[AnnotationClientVerify]; ok {
		switch v {
		case "on", "optional", "optional_no_ca", "off":
			p.ClientVerify, set = v, true
		default:
			b.warn(src, fmt.Sprintf("%s: %q is not one of on, optional, optional_no_ca, off; default used", field(AnnotationClientVerify), v))
		}
	}
	if v, ok := ing.Annotations[AnnotationClientVerifyDepth]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 16 {
			b.warn(src, fmt.Sprintf("%s: %q is not a number in 1..16; default used", field(AnnotationClientVerifyDepth), v))
		} else {
			p.ClientVerifyDepth, set = n, true
		}
	}
	if v, ok := ing.Annotations[AnnotationClientCASecret]; ok {
		set = true
		p.ClientCA = b.caBundle(ing.Namespace, v, src, field(AnnotationClientCASecret))
		if p.ClientCA == nil && (p.ClientVerify == "on" || p.ClientVerify == "optional" || p.ClientVerify == "") {
			// Fail closed: without its CAs the host must not accept clients
			// it cannot verify, so it refuses every client certificate.
			p.ClientCA = &model.CABundle{Source: ref("Secret", ing.Namespace, v)}
		}
	}
	if (p.ClientVerify == "on" || p.ClientVerify == "optional") && p.ClientCA == nil {
		b.warn(src, fmt.Sprintf("%s: %q needs %s; no client certificate is accepted for its hosts", field(AnnotationClientVerify), p.ClientVerify, AnnotationClientCASecret))
		p.ClientCA = &model.CABundle{}
	}
	if !set {
		return nil
	}
	return p
}

// caBundle reads and checks the CA bundle Secret ns/name; nil (and a
// warning) when it is unusable.
func (b *builder) caBundle(ns, name string, src model.ObjectRef, field string) *model.CABundle {
	sref := ref("Secret", ns, name)
	if name == "" || strings.Contains(name, "/") {
		b.warn(src, fmt.Sprintf("%s: %q must be the name of a Secret in namespace %s", field, name, ns))
		return nil
	}
	s := b.secrets[nsName{ns, name}]
	if s == nil {
		b.warn(src, fmt.Sprintf("%s: %s not found; no client certificate is accepted", field, sref))
		return nil
	}
	crt := s.Data[secretKeyCACert]
	if err := checkCAPEM(crt); err != nil {
		b.warn(src, fmt.Sprintf("%s: %s: data[%q]: %v; no client certificate is accepted", field, sref, secretKeyCACert, err))
		return nil
	}
	out := &model.CABundle{Source: sref, PEM: bytes.Clone(crt)}
	if crl, ok := s.Data[secretKeyCACRL]; ok {
		if err := checkCRLPEM(crl); err != nil {
			b.warn(src, fmt.Sprintf("%s: %s: data[%q]: %v; no client certificate is accepted", field, sref, secretKeyCACRL, err))
			return nil
		}
		out.CRLPEM = bytes.Clone(crl)
	}
	return out
}

// checkCAPEM requires at least one certificate and nothing but certificates.
func checkCAPEM(data []byte) error {
	n := 0
	for rest := data; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			if len(bytes.TrimSpace(rest)) > 0 {
				return fmt.Errorf("trailing data after %d PEM certificates", n)
			}
			break
		}
		if blk.Type != "CERTIFICATE" {
			return fmt.Errorf("PEM block %d is %q, want CERTIFICATE", n, blk.Type)
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return fmt.Errorf("certificate %d: %v", n, err)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("no PEM certificate")
	}
	return nil
}

func checkCRLPEM(data []byte) error {
	for rest, n := data, 0; ; n++ {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			if n == 0 {
				return fmt.Errorf("no PEM X509 CRL")
			}
			return nil
		}
		if blk.Type != "X509 CRL" {
			return fmt.Errorf("PEM block %d is %q, want X509 CRL", n, blk.Type)
		}
		if _, err := x509.ParseRevocationList(blk.Bytes); err != nil {
			return fmt.Errorf("crl %d: %v", n, err)
		}
	}
}
