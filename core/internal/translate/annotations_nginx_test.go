package translate_test

import (
	"maps"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/core/internal/translate"
	"github.com/sluicegw/sluice/internal/testcert"
)

// The ingress-nginx subset: each honoured annotation gives the same policy
// as its sluice.io equivalent; bad, conflicting and refused ones warn,
// naming the annotation the user wrote.
func TestNginxAnnotations(t *testing.T) {
	ca, err := testcert.CA("client ca")
	if err != nil {
		t.Fatal(err)
	}
	good := caSecret("ns", "client-ca", map[string][]byte{"ca.crt": ca.CertPEM})
	src := model.ObjectRef{Kind: "Ingress", Namespace: "ns", Name: "ing"}
	bundle := &model.CABundle{Source: model.ObjectRef{Kind: "Secret", Namespace: "ns", Name: "client-ca"}, PEM: ca.CertPEM}
	const n = "nginx.ingress.kubernetes.io/"

	for name, tc := range map[string]struct {
		anns     map[string]string
		want     *model.HostTLS
		warnings []string
	}{
		"none": {},
		"ssl-redirect": {
			anns: map[string]string{n + "ssl-redirect": "false"},
			want: &model.HostTLS{Source: src, Redirect: ptr(false)},
		},
		"force-ssl-redirect": {
			anns: map[string]string{n + "force-ssl-redirect": "true"},
			want: &model.HostTLS{Source: src, Redirect: ptr(true)},
		},
		"force wins over ssl-redirect": {
			anns: map[string]string{n + "force-ssl-redirect": "true", n + "ssl-redirect": "false"},
			want: &model.HostTLS{Source: src, Redirect: ptr(true)},
			warnings: []string{
				`Ingress ns/ing: metadata.annotations["nginx.ingress.kubernetes.io/ssl-redirect"]: "false" conflicts with metadata.annotations["nginx.ingress.kubernetes.io/force-ssl-redirect"] "true", which wins`,
			},
		},
		"agreeing aliases": {
			anns: map[string]string{n + "force-ssl-redirect": "true", n + "ssl-redirect": "True"},
			want: &model.HostTLS{Source: src, Redirect: ptr(true)},
		},
		"mtls as ingress-nginx writes it": {
			anns: map[string]string{n + "auth-tls-secret": "ns/client-ca", n + "auth-tls-verify-client": "on", n + "auth-tls-verify-depth": "2"},
			want: &model.HostTLS{Source: src, ClientVerify: "on", ClientVerifyDepth: 2, ClientCA: bundle},
		},
		"secret without namespace": {
			anns: map[string]string{n + "auth-tls-secret": "client-ca", n + "auth-tls-verify-client": "optional_no_ca"},
			want: &model.HostTLS{Source: src, ClientVerify: "optional_no_ca", ClientCA: bundle},
		},
		"sluice.io wins over its alias": {
			anns: map[string]string{n + "auth-tls-verify-client": "off", "sluice.io/client-verify": "optional", "sluice.io/client-ca-secret": "client-ca"},
			want: &model.HostTLS{Source: src, ClientVerify: "optional", ClientCA: bundle},
			warnings: []string{
				`Ingress ns/ing: metadata.annotations["nginx.ingress.kubernetes.io/auth-tls-verify-client"]: "off" conflicts with metadata.annotations["sluice.io/client-verify"] "optional", which wins`,
			},
		},
		"bad values are ignored": {
			anns: map[string]string{n + "ssl-redirect": "yes please", n + "auth-tls-verify-client": "strict", n + "auth-tls-verify-depth": "0"},
			warnings: []string{
				`Ingress ns/ing: metadata.annotations["nginx.ingress.kubernetes.io/auth-tls-verify-client"]: "strict" is not one of on, off, optional, optional_no_ca; ignored`,
				`Ingress ns/ing: metadata.annotations["nginx.ingress.kubernetes.io/auth-tls-verify-depth"]: "0" is not a number in 1..16; ignored`,
				`Ingress ns/ing: metadata.annotations["nginx.ingress.kubernetes.io/ssl-redirect"]: "yes please" is not true or false; ignored`,
			},
		},
		"secret in another namespace": {
			anns: map[string]string{n + "auth-tls-secret": "other/client-ca", n + "auth-tls-verify-client": "on"},
			want: &model.HostTLS{Source: src, ClientVerify: "on", ClientCA: &model.CABundle{}},
			warnings: []string{
				`Ingress ns/ing: metadata.annotations["nginx.ingress.kubernetes.io/auth-tls-secret"]: "other/client-ca" names a Secret outside namespace ns; ignored`,
				`Ingress ns/ing: metadata.annotations["sluice.io/client-verify"]: "on" needs sluice.io/client-ca-secret; no client certificate is accepted for its hosts`,
			},
		},
		"malformed secret": {
			anns: map[string]string{n + "auth-tls-secret": "ns/a/b"},
			warnings: []string{
				`Ingress ns/ing: metadata.annotations["nginx.ingress.kubernetes.io/auth-tls-secret"]: "ns/a/b" is not namespace/name; ignored`,
			},
		},
		"snippets are refused": {
			anns: map[string]string{n + "configuration-snippet": "more_set_headers x;", n + "server-snippet": "location / {}"},
			warnings: []string{
				`Ingress ns/ing: metadata.annotations["nginx.ingress.kubernetes.io/configuration-snippet"]: refused: snippet annotations inject raw nginx configuration; sluice never runs them`,
				`Ingress ns/ing: metadata.annotations["nginx.ingress.kubernetes.io/server-snippet"]: refused: snippet annotations inject raw nginx configuration; sluice never runs them`,
			},
		},
		"unsupported ones still warn": {
			anns: map[string]string{n + "affinity": "cookie"},
			warnings: []string{
				`Ingress ns/ing: metadata.annotations["nginx.ingress.kubernetes.io/affinity"]: not supported by this version of sluice; ignored`,
			},
		},
	} {
		t.Run(name, func(t *testing.T) {
			opts := []ingressOpt{rule("a.test", prefix("/", "web", 80)), tlsFor("", "a.test")}
			for k, v := range tc.anns {
				opts = append(opts, annotation(k, v))
			}
			ing := ingress("ns", "ing", opts...)
			before := maps.Clone(ing.Annotations)
			snap, warnings := translate.Translate(translate.Input{
				Ingresses: []*networkingv1.Ingress{ing},
				Secrets:   []*corev1.Secret{good},
			}, translate.Options{AllowLoopback: true, Now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)})
			if !maps.Equal(before, ing.Annotations) {
				t.Fatalf("translate modified the Ingress's annotations: %v", ing.Annotations)
			}
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
		})
	}
}

// FuzzNginxAnnotations: no ingress-nginx annotation value makes translate
// panic or modify its input, and a sluice.io annotation always wins over
// its alias.
func FuzzNginxAnnotations(f *testing.F) {
	f.Add("true", "false", "ns/client-ca", "on", "2", "optional")
	f.Add("", "x", "/", "", "-1", "")
	f.Add("1", "0", "other/x", "optional_no_ca", "16", "off")
	f.Fuzz(func(t *testing.T, redirect, force, secret, verify, depth, own string) {
		const n = "nginx.ingress.kubernetes.io/"
		ing := ingress("ns", "ing", rule("a.test", prefix("/", "web", 80)),
			annotation(n+"ssl-redirect", redirect), annotation(n+"force-ssl-redirect", force),
			annotation(n+"auth-tls-secret", secret), annotation(n+"auth-tls-verify-client", verify),
			annotation(n+"auth-tls-verify-depth", depth), annotation("sluice.io/client-verify", own))
		before := maps.Clone(ing.Annotations)
		snap, _ := translate.Translate(translate.Input{Ingresses: []*networkingv1.Ingress{ing}}, translate.Options{})
		if !maps.Equal(before, ing.Annotations) {
			t.Fatal("input modified")
		}
		p := snap.Hosts[0].TLSPolicy
		switch own {
		case "on", "optional", "optional_no_ca", "off":
			if p == nil || p.ClientVerify != own {
				t.Fatalf("sluice.io/client-verify %q lost to its alias: %+v", own, p)
			}
		}
	})
}
