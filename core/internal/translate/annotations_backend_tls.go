package translate

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/sluicegw/sluice/core/internal/model"
)

// The sluice.io annotations for TLS to the backend, and their
// ingress-nginx twins (proxy-ssl-*).
const (
	AnnotationBackendTLSVerify = "sluice.io/backend-tls-verify"
	AnnotationBackendTLSSecret = "sluice.io/backend-tls-secret"
	AnnotationBackendTLSName   = "sluice.io/backend-tls-name"
)

var (
	tlsVerifyTwins = twins{AnnotationBackendTLSVerify, []string{NginxPrefix + "proxy-ssl-verify"}}
	tlsSecretTwins = twins{AnnotationBackendTLSSecret, []string{NginxPrefix + "proxy-ssl-secret"}}
	tlsNameTwins   = twins{AnnotationBackendTLSName, []string{NginxPrefix + "proxy-ssl-name"}}
)

// upstreamTLS reads the backend TLS annotations of ing for a route
// speaking proto. Every problem is an error for deny: a TLS check that was
// asked for and cannot be made must not be skipped.
func (b *builder) upstreamTLS(ing *networkingv1.Ingress, src model.ObjectRef, proto model.Protocol, deny func(string, error)) *model.UpstreamTLS {
	var u model.UpstreamTLS
	var fields []string
	failed := false
	verify, f, ok, err := readTwin(b, ing, src, tlsVerifyTwins, parseTrueFalse, parseOnOff)
	if ok {
		fields = append(fields, f)
		if err != nil {
			deny(f, err)
			failed = true
		}
		u.Verify = verify
	}
	name, f, ok, err := readTwin(b, ing, src, tlsNameTwins, parseServerName, parseServerName)
	if ok {
		fields = append(fields, f)
		if err != nil {
			deny(f, err)
			failed = true
		}
		u.ServerName = name
	}
	secret, f, ok, err := readTwin(b, ing, src, tlsSecretTwins, secretName(ing.Namespace), secretName(ing.Namespace))
	if ok {
		fields = append(fields, f)
		if err == nil {
			err = b.backendTLSSecret(ing.Namespace, secret, &u)
		}
		if err != nil {
			deny(f, err)
			failed = true
		}
	}
	if len(fields) == 0 || failed {
		return nil
	}
	if proto != model.ProtocolHTTPS && proto != model.ProtocolGRPCS {
		for _, f := range fields {
			b.warn(src, fmt.Sprintf("%s: has no effect unless the backend protocol is HTTPS or GRPCS; ignored", f))
		}
		return nil
	}
	u.Key = upstreamTLSKey(&u)
	return &u
}

func parseTrueFalse(v string) (bool, error) {
	bv, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%q is not true or false", v)
	}
	return bv, nil
}

func parseOnOff(v string) (bool, error) {
	switch v {
	case "on":
		return true, nil
	case "off":
		return false, nil
	}
	return false, fmt.Errorf("%q is not on or off", v)
}

// parseServerName accepts a DNS name (letters, digits, '-', '.'; labels
// of 1-63, at most 253 in all).
func parseServerName(v string) (string, error) {
	bad := fmt.Errorf("%q is not a DNS name", v)
	if v == "" || len(v) > 253 {
		return "", bad
	}
	for _, l := range strings.Split(v, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return "", bad
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return "", bad
			}
		}
	}
	return strings.ToLower(v), nil
}

// secretName reads "name" or "namespace/name" of a Secret that must be
// in namespace ns (see nginxSecret).
func secretName(ns string) func(string) (string, error) {
	return func(v string) (string, error) {
		name, problem := nginxSecret(ns, v)
		if problem != "" {
			return "", fmt.Errorf("%q %s", v, problem)
		}
		return name, nil
	}
}

// backendTLSSecret fills u from Secret ns/name: ca.crt verifies the
// backend, tls.crt and tls.key are presented to it.
func (b *builder) backendTLSSecret(ns, name string, u *model.UpstreamTLS) error {
	sref := ref("Secret", ns, name)
	s := b.secrets[nsName{ns, name}]
	if s == nil {
		return fmt.Errorf("%s not found", sref)
	}
	if crt, ok := s.Data[secretKeyCACert]; ok {
		if err := checkCAPEM(crt); err != nil {
			return fmt.Errorf("%s: data[%q]: %w", sref, secretKeyCACert, err)
		}
		u.CA = &model.CABundle{Source: sref, PEM: bytes.Clone(crt)}
	}
	crt, hasCrt := s.Data["tls.crt"]
	key, hasKey := s.Data["tls.key"]
	switch {
	case hasCrt && hasKey:
		if _, err := tls.X509KeyPair(crt, key); err != nil {
			return fmt.Errorf("%s: data[\"tls.crt\"], data[\"tls.key\"]: %w", sref, err)
		}
		u.ClientCert = &model.KeyPair{Source: sref, CertPEM: bytes.Clone(crt), KeyPEM: bytes.Clone(key)}
	case hasCrt || hasKey:
		return fmt.Errorf("%s: tls.crt and tls.key must be set together", sref)
	}
	if u.CA == nil && u.ClientCert == nil {
		return errors.New(sref.String() + ` has neither data["ca.crt"] nor data["tls.crt"] and data["tls.key"]`)
	}
	return nil
}

// upstreamTLSKey is a digest of every setting of u.
func upstreamTLSKey(u *model.UpstreamTLS) string {
	h := sha256.New()
	field := func(b []byte) {
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	field([]byte(strconv.FormatBool(u.Verify)))
	field([]byte(u.ServerName))
	if u.CA != nil {
		field(u.CA.PEM)
	} else {
		field(nil)
	}
	if u.ClientCert != nil {
		field(u.ClientCert.CertPEM)
		field(u.ClientCert.KeyPEM)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
