package kube

import (
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
)

// nsName identifies a namespaced object.
type nsName struct{ ns, name string }

// references are the Services and Secrets that some Ingress names. The set
// is a superset of what translate reads: it ignores ingress classes, so that
// no class change can make a needed object look irrelevant.
type references struct {
	services map[nsName]bool
	secrets  map[nsName]bool
}

// secretAnnotations are the Ingress annotations whose value names a Secret,
// as "name" (in the Ingress's namespace) or "namespace/name". A translation
// feature that reads a Secret through an annotation must list it here, or
// kube.secrets=referenced would not watch that Secret.
var secretAnnotations = []string{
	"nginx.ingress.kubernetes.io/auth-tls-secret",
	"sluice.io/client-ca-secret",
	"nginx.ingress.kubernetes.io/proxy-ssl-secret", // translate/annotations_backend_tls.go
	"sluice.io/backend-tls-secret",
}

// index builds the references of ings. It is pure.
func index(ings []*networkingv1.Ingress) *references {
	r := &references{services: map[nsName]bool{}, secrets: map[nsName]bool{}}
	addBackend := func(ns string, b *networkingv1.IngressBackend) {
		if b != nil && b.Service != nil && b.Service.Name != "" {
			r.services[nsName{ns, b.Service.Name}] = true
		}
	}
	for _, ing := range ings {
		if ing == nil {
			continue
		}
		ns := ing.Namespace
		addBackend(ns, ing.Spec.DefaultBackend)
		for _, rule := range ing.Spec.Rules {
			if rule.HTTP == nil {
				continue
			}
			for i := range rule.HTTP.Paths {
				addBackend(ns, &rule.HTTP.Paths[i].Backend)
			}
		}
		for _, t := range ing.Spec.TLS {
			if t.SecretName != "" {
				r.secrets[nsName{ns, t.SecretName}] = true
			}
		}
		for _, a := range secretAnnotations {
			v := strings.TrimSpace(ing.Annotations[a])
			if v == "" {
				continue
			}
			k := nsName{ns, v}
			if sns, name, ok := strings.Cut(v, "/"); ok {
				k = nsName{sns, name}
			}
			if k.ns != "" && k.name != "" {
				r.secrets[k] = true
			}
		}
	}
	return r
}
