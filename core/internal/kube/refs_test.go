package kube

import (
	"maps"
	"slices"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestIndex(t *testing.T) {
	withDefault := ingress("shop", "a", "web", "a-tls")
	withDefault.Spec.DefaultBackend = &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "fallback"}}
	withDefault.Spec.TLS = append(withDefault.Spec.TLS, networkingv1.IngressTLS{Hosts: []string{"x"}}) // no secret: certmagic
	resource := ingress("shop", "b", "web", "")
	resource.Spec.Rules[0].HTTP.Paths[0].Backend = networkingv1.IngressBackend{Resource: nil}
	resource.Spec.Rules = append(resource.Spec.Rules, networkingv1.IngressRule{Host: "no-http"})
	annotated := ingress("blog", "c", "blog", "")
	annotated.Annotations = map[string]string{
		"nginx.ingress.kubernetes.io/auth-tls-secret": "certs/client-ca",
		"sluice.io/client-ca-secret":                  " local-ca ",
		"unrelated.example.com/secret":                "ignored",
	}
	for name, tc := range map[string]struct {
		ings     []*networkingv1.Ingress
		services []nsName
		secrets  []nsName
	}{
		"none":     {nil, nil, nil},
		"nil":      {[]*networkingv1.Ingress{nil}, nil, nil},
		"default":  {[]*networkingv1.Ingress{withDefault}, []nsName{{"shop", "fallback"}, {"shop", "web"}}, []nsName{{"shop", "a-tls"}}},
		"resource": {[]*networkingv1.Ingress{resource}, nil, nil},
		"annotations": {[]*networkingv1.Ingress{annotated}, []nsName{{"blog", "blog"}},
			[]nsName{{"blog", "local-ca"}, {"certs", "client-ca"}}},
		"empty ingress": {[]*networkingv1.Ingress{{ObjectMeta: metav1.ObjectMeta{Name: "e"}}}, nil, nil},
	} {
		t.Run(name, func(t *testing.T) {
			r := index(tc.ings)
			if got := sortedNames(r.services); !slices.Equal(got, tc.services) {
				t.Errorf("services: got %v, want %v", got, tc.services)
			}
			if got := sortedNames(r.secrets); !slices.Equal(got, tc.secrets) {
				t.Errorf("secrets: got %v, want %v", got, tc.secrets)
			}
		})
	}
}

func sortedNames(m map[nsName]bool) []nsName {
	out := slices.SortedFunc(maps.Keys(m), func(a, b nsName) int {
		if a.ns != b.ns {
			if a.ns < b.ns {
				return -1
			}
			return 1
		}
		if a.name < b.name {
			return -1
		}
		if a.name > b.name {
			return 1
		}
		return 0
	})
	if len(out) == 0 {
		return nil
	}
	return out
}

// FuzzIndex: no annotation value makes index panic, and every reference
// it returns names an object.
func FuzzIndex(f *testing.F) {
	f.Add("certs/client-ca", "local-ca", "tls")
	f.Add("/", "", " ")
	f.Add("a/b/c", "ns/", "x")
	f.Fuzz(func(t *testing.T, nginxSecret, sluiceSecret, tlsSecret string) {
		ing := ingress("shop", "web", "web", tlsSecret)
		ing.Annotations = map[string]string{
			"nginx.ingress.kubernetes.io/auth-tls-secret": nginxSecret,
			"sluice.io/client-ca-secret":                  sluiceSecret,
		}
		r := index([]*networkingv1.Ingress{ing})
		for k := range r.secrets {
			if k.ns == "" || k.name == "" {
				t.Fatalf("reference %+v names no Secret", k)
			}
		}
		if !r.services[nsName{"shop", "web"}] {
			t.Fatal("backend Service missing")
		}
		if tlsSecret != "" && !r.secrets[nsName{"shop", tlsSecret}] {
			t.Fatalf("spec.tls Secret %q missing", tlsSecret)
		}
	})
}
