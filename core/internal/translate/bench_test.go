package translate_test

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/sluicegw/sluice/core/internal/translate"
)

// benchInput is n Ingresses, each with its own host, two paths and a
// Service with a 3-endpoint EndpointSlice; every tenth Ingress also has TLS
// (without a Secret, to keep certificate parsing out of the measure).
func benchInput(n int) translate.Input {
	var in translate.Input
	for i := range n {
		ns, name := fmt.Sprintf("ns-%d", i%100), fmt.Sprintf("app-%d", i)
		h := fmt.Sprintf("app-%d.example.com", i)
		opts := []ingressOpt{rule(h, prefix("/", name, 80), path(networkingv1.PathTypeExact, "/healthz", name, 80))}
		if i%10 == 0 {
			opts = append(opts, tlsFor("", h))
		}
		in.Ingresses = append(in.Ingresses, ingress(ns, name, opts...))
		in.Services = append(in.Services, service(ns, name, port("http", 80)))
		in.EndpointSlices = append(in.EndpointSlices, endpointSlice(ns, name+"-abcde", name, discoveryv1.AddressTypeIPv4, "http", 8080,
			fmt.Sprintf("10.%d.%d.1", i/256%256, i%256), fmt.Sprintf("10.%d.%d.2", i/256%256, i%256), fmt.Sprintf("10.%d.%d.3", i/256%256, i%256)))
	}
	return in
}

// BenchmarkTranslate measures a full translation of 10,000 Ingresses (and
// their Services and EndpointSlices): the cost of one control-plane rebuild.
func BenchmarkTranslate(b *testing.B) {
	for _, n := range []int{100, 10_000} {
		b.Run(fmt.Sprintf("ingresses=%d", n), func(b *testing.B) {
			in := benchInput(n)
			opts := translate.Options{Now: now}
			b.ReportAllocs()
			for b.Loop() {
				snap, warnings := translate.Translate(in, opts)
				if len(snap.Hosts) != n || len(warnings) != 0 {
					b.Fatalf("got %d hosts and %d warnings, want %d and 0", len(snap.Hosts), len(warnings), n)
				}
			}
		})
	}
}

// BenchmarkTranslateWithCertificates adds one TLS Secret per ten Ingresses,
// so certificate parsing (tls.X509KeyPair) is measured too.
func BenchmarkTranslateWithCertificates(b *testing.B) {
	const n = 10_000
	in := benchInput(n)
	crt, key := selfSigned(b, []string{"*.example.com"}, now.AddDate(-1, 0, 0), now.AddDate(1, 0, 0))
	for i, ing := range in.Ingresses {
		if i%10 != 0 {
			continue
		}
		ing.Spec.TLS[0].SecretName = ing.Name + "-tls"
		in.Secrets = append(in.Secrets, &corev1.Secret{
			ObjectMeta: ing.ObjectMeta,
			Type:       corev1.SecretTypeTLS,
			Data:       map[string][]byte{corev1.TLSCertKey: crt, corev1.TLSPrivateKeyKey: key},
		})
		in.Secrets[len(in.Secrets)-1].Name = ing.Name + "-tls"
	}
	opts := translate.Options{Now: now}
	b.ReportAllocs()
	for b.Loop() {
		snap, warnings := translate.Translate(in, opts)
		if len(snap.Certificates) != n/10 || len(warnings) != 0 {
			b.Fatalf("got %d certificates and %d warnings (%v), want %d and 0", len(snap.Certificates), len(warnings), warnings, n/10)
		}
	}
}
