package translate_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/core/internal/translate"
	"github.com/sluicegw/sluice/internal/testcert"
)

func caSecret(ns, name string, data map[string][]byte) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: data}
}

func TestHostTLSAnnotations(t *testing.T) {
	ca, err := testcert.CA("client ca")
	if err != nil {
		t.Fatal(err)
	}
	crl, err := testcert.CRL(ca)
	if err != nil {
		t.Fatal(err)
	}
	good := caSecret("ns", "client-ca", map[string][]byte{"ca.crt": ca.CertPEM, "ca.crl": crl})
	noCRT := caSecret("ns", "empty", map[string][]byte{"other": []byte("x")})
	badCRL := caSecret("ns", "bad-crl", map[string][]byte{"ca.crt": ca.CertPEM, "ca.crl": []byte("junk")})
	keyInCRT := caSecret("ns", "key", map[string][]byte{"ca.crt": append(bytes.Clone(ca.CertPEM), ca.KeyPEM...)})
	web := rule("a.test", prefix("/", "web", 80))
	src := model.ObjectRef{Kind: "Ingress", Namespace: "ns", Name: "ing"}
	mtls := func(verify string, depth int) *model.HostTLS {
		return &model.HostTLS{Source: src, ClientVerify: verify, ClientVerifyDepth: depth,
			ClientCA: &model.CABundle{Source: model.ObjectRef{Kind: "Secret", Namespace: "ns", Name: "client-ca"}, PEM: ca.CertPEM, CRLPEM: crl}}
	}
	closed := func(verify, secret string) *model.HostTLS {
		p := &model.HostTLS{Source: src, ClientVerify: verify, ClientCA: &model.CABundle{}}
		if secret != "" {
			p.ClientCA.Source = model.ObjectRef{Kind: "Secret", Namespace: "ns", Name: secret}
		}
		return p
	}
	hsts := 600 * time.Second

	for name, tc := range map[string]struct {
		anns     map[string]string
		want     *model.HostTLS
		warnings []string
	}{
		"none": {},
		"mtls": {
			anns: map[string]string{"sluice.io/client-verify": "on", "sluice.io/client-ca-secret": "client-ca", "sluice.io/client-verify-depth": "2"},
			want: mtls("on", 2),
		},
		"redirect hsts on-demand": {
			anns: map[string]string{"sluice.io/ssl-redirect": "false", "sluice.io/hsts-max-age": "600", "sluice.io/on-demand-tls": "false"},
			want: &model.HostTLS{Source: src, Redirect: ptr(false), HSTSMaxAge: &hsts, OnDemand: ptr(false)},
		},
		"bad values keep defaults": {
			anns: map[string]string{"sluice.io/ssl-redirect": "maybe", "sluice.io/hsts-max-age": "-1", "sluice.io/client-verify": "yes", "sluice.io/client-verify-depth": "0"},
			warnings: []string{
				`Ingress ns/ing: metadata.annotations["sluice.io/ssl-redirect"]: "maybe" is not true or false; default used`,
				`Ingress ns/ing: metadata.annotations["sluice.io/hsts-max-age"]: "-1" is not a number of seconds; default used`,
				`Ingress ns/ing: metadata.annotations["sluice.io/client-verify"]: "yes" is not one of on, optional, optional_no_ca, off; default used`,
				`Ingress ns/ing: metadata.annotations["sluice.io/client-verify-depth"]: "0" is not a number in 1..16; default used`,
			},
		},
		"verify on without CA fails closed": {
			anns: map[string]string{"sluice.io/client-verify": "on"},
			want: closed("on", ""),
			warnings: []string{
				`Ingress ns/ing: metadata.annotations["sluice.io/client-verify"]: "on" needs sluice.io/client-ca-secret; no client certificate is accepted for its hosts`,
			},
		},
		"missing secret fails closed": {
			anns: map[string]string{"sluice.io/client-verify": "optional", "sluice.io/client-ca-secret": "nope"},
			want: closed("optional", "nope"),
			warnings: []string{
				`Ingress ns/ing: metadata.annotations["sluice.io/client-ca-secret"]: Secret ns/nope not found; no client certificate is accepted`,
			},
		},
		"secret without ca.crt": {
			anns: map[string]string{"sluice.io/client-verify": "on", "sluice.io/client-ca-secret": "empty"},
			want: closed("on", "empty"),
			warnings: []string{
				`Ingress ns/ing: metadata.annotations["sluice.io/client-ca-secret"]: Secret ns/empty: data["ca.crt"]: no PEM certificate; no client certificate is accepted`,
			},
		},
		"bad crl": {
			anns: map[string]string{"sluice.io/client-verify": "on", "sluice.io/client-ca-secret": "bad-crl"},
			want: closed("on", "bad-crl"),
			warnings: []string{
				`Ingress ns/ing: metadata.annotations["sluice.io/client-ca-secret"]: Secret ns/bad-crl: data["ca.crl"]: no PEM X509 CRL; no client certificate is accepted`,
			},
		},
		"private key in ca.crt": {
			anns: map[string]string{"sluice.io/client-verify": "on", "sluice.io/client-ca-secret": "key"},
			want: closed("on", "key"),
			warnings: []string{
				`Ingress ns/ing: metadata.annotations["sluice.io/client-ca-secret"]: Secret ns/key: data["ca.crt"]: PEM block 1 is "EC PRIVATE KEY", want CERTIFICATE; no client certificate is accepted`,
			},
		},
		"other namespace refused": {
			anns: map[string]string{"sluice.io/client-verify": "on", "sluice.io/client-ca-secret": "other/client-ca"},
			want: closed("on", "other/client-ca"),
			warnings: []string{
				`Ingress ns/ing: metadata.annotations["sluice.io/client-ca-secret"]: "other/client-ca" must be the name of a Secret in namespace ns`,
			},
		},
	} {
		t.Run(name, func(t *testing.T) {
			opts := []ingressOpt{web, tlsFor("", "a.test")}
			for k, v := range tc.anns {
				opts = append(opts, annotation(k, v))
			}
			snap, warnings := translate.Translate(translate.Input{
				Ingresses: []*networkingv1.Ingress{ingress("ns", "ing", opts...)},
				Secrets:   []*corev1.Secret{good, noCRT, badCRL, keyInCRT},
			}, translate.Options{AllowLoopback: true, Now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)})
			if len(snap.Hosts) != 1 {
				t.Fatalf("hosts: %+v", snap.Hosts)
			}
			assertJSONEqual(t, snap.Hosts[0].TLSPolicy, tc.want)
			var gs []string
			for _, w := range warnings {
				if strings.HasPrefix(w.Message, "metadata.annotations") {
					gs = append(gs, w.String())
				}
			}
			if len(tc.warnings) == 0 {
				tc.warnings = nil
			}
			assertStrings(t, gs, tc.warnings)
			if tc.want != nil && tc.want.ClientCA != nil && !bytes.Equal(snap.Hosts[0].TLSPolicy.ClientCA.PEM, tc.want.ClientCA.PEM) {
				t.Error("CA PEM differs")
			}
		})
	}
}

// Two Ingresses route one host with different settings: the oldest wins,
// the other gets a warning; the same settings are no conflict.
func TestHostTLSConflict(t *testing.T) {
	older := ingress("ns", "old", created(1), rule("a.test", prefix("/", "web", 80)), annotation("sluice.io/ssl-redirect", "false"))
	newer := ingress("ns", "new", created(2), rule("a.test", prefix("/x", "web", 80)), annotation("sluice.io/ssl-redirect", "true"))
	same := ingress("ns", "same", created(3), rule("a.test", prefix("/y", "web", 80)), annotation("sluice.io/ssl-redirect", "false"))
	snap, warnings := translate.Translate(translate.Input{Ingresses: []*networkingv1.Ingress{same, newer, older}}, translate.Options{})
	p := snap.Hosts[0].TLSPolicy
	if p == nil || p.Source.Name != "old" || *p.Redirect {
		t.Fatalf("policy %+v, want the oldest Ingress's", p)
	}
	var gs []string
	for _, w := range warnings {
		if strings.HasPrefix(w.Message, "metadata.annotations") {
			gs = append(gs, w.String())
		}
	}
	assertStrings(t, gs, []string{
		`Ingress ns/new: metadata.annotations: the TLS settings for host "a.test" are already set by Ingress ns/old (the oldest Ingress wins); ignored for this host`,
	})
}

func assertJSONEqual(t *testing.T, got, want any) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if !bytes.Equal(g, w) {
		t.Errorf("got  %s\nwant %s", g, w)
	}
}

func assertStrings(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got %d, want %d:\n got: %q\nwant: %q", len(got), len(want), got, want)
		return
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("[%d]\n got: %s\nwant: %s", i, got[i], want[i])
		}
	}
}

// FuzzHostTLSAnnotations: no annotation value or Secret content makes
// translate panic, and a host that asks for client certificates always
// gets a CA bundle (possibly empty: fail closed).
func FuzzHostTLSAnnotations(f *testing.F) {
	ca, _ := testcert.CA("fuzz ca")
	f.Add("on", "2", "true", "600", "client-ca", ca.CertPEM, []byte(nil))
	f.Add("optional", "x", "no", "-5", "../x", []byte("-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"), []byte("junk"))
	f.Add("", "", "", "", "", []byte(nil), []byte(nil))
	f.Fuzz(func(t *testing.T, verify, depth, redirect, hsts, secret string, crt, crl []byte) {
		ing := ingress("ns", "ing", rule("a.test", prefix("/", "web", 80)),
			annotation("sluice.io/client-verify", verify), annotation("sluice.io/client-verify-depth", depth),
			annotation("sluice.io/ssl-redirect", redirect), annotation("sluice.io/hsts-max-age", hsts),
			annotation("sluice.io/client-ca-secret", secret))
		s := caSecret("ns", "client-ca", map[string][]byte{"ca.crt": crt, "ca.crl": crl})
		snap, _ := translate.Translate(translate.Input{Ingresses: []*networkingv1.Ingress{ing}, Secrets: []*corev1.Secret{s}}, translate.Options{})
		p := snap.Hosts[0].TLSPolicy
		if p == nil {
			t.Fatal("annotations set, no policy")
		}
		if (p.ClientVerify == "on" || p.ClientVerify == "optional") && p.ClientCA == nil {
			t.Fatalf("verify %q without a CA bundle", p.ClientVerify)
		}
	})
}
