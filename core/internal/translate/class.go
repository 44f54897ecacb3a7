package translate

import (
	"fmt"
	"slices"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/sluicegw/sluice/core/internal/model"
)

const (
	// annotationIngressClass is the legacy class annotation, still honoured.
	annotationIngressClass = "kubernetes.io/ingress.class"
	// annotationDefaultClass marks the IngressClass of Ingresses without one.
	annotationDefaultClass = networkingv1.AnnotationIsDefaultIngressClass
)

// owns reports whether ing belongs to us. Ingresses of other classes are not
// ours and are ignored without a warning: another controller serves them.
//
// An empty class name (field or annotation) counts as no class: the API
// server refuses it, and it must not match an empty Options.ClassNames entry.
func (b *builder) owns(ing *networkingv1.Ingress) bool {
	a := ing.Annotations[annotationIngressClass]
	if name := ing.Spec.IngressClassName; name != nil && *name != "" {
		mine := b.ownsClass(*name)
		if a != "" && a != *name && (mine || b.ownsClass(a)) {
			b.warn(ref("Ingress", ing.Namespace, ing.Name), fmt.Sprintf(
				"metadata.annotations[%q] %q differs from spec.ingressClassName %q; spec.ingressClassName is used", annotationIngressClass, a, *name))
		}
		return mine
	}
	if a != "" {
		return b.ownsClass(a)
	}
	return b.defaultClass
}

// ownsClass reports whether the class name is ours: an IngressClass of that
// name with our controller, or, when no IngressClass of that name exists, a
// name in Options.ClassNames.
func (b *builder) ownsClass(name string) bool {
	if c, ok := b.classes[name]; ok {
		return c.Spec.Controller == b.opts.ControllerName
	}
	return slices.Contains(b.opts.ClassNames, name)
}

// Annotation prefixes Sluice reads (DESIGN.md "Configuration"). An
// annotation under one of them that translate does not honour is warned
// about rather than silently ignored.
var annotationPrefixes = []string{"sluice.io/", "nginx.ingress.kubernetes.io/"}

// supportedAnnotations are the prefixed annotations translate honours: the
// union of each feature's own set, declared in that feature's file. Each
// one must change the Snapshot.
var supportedAnnotations = union(filterAnnotations, tlsAnnotations, nginxAnnotations, backendAnnotations, routingAnnotations)

func union(sets ...map[string]bool) map[string]bool {
	out := map[string]bool{}
	for _, s := range sets {
		for k, v := range s {
			out[k] = v
		}
	}
	return out
}

// checkAnnotations warns about the prefixed annotations of ing that are not
// supported, in key order.
func (b *builder) checkAnnotations(ing *networkingv1.Ingress, src model.ObjectRef) {
	var keys []string
	for k := range ing.Annotations {
		if supportedAnnotations[k] {
			continue
		}
		for _, p := range annotationPrefixes {
			if strings.HasPrefix(k, p) {
				keys = append(keys, k)
				break
			}
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		b.warn(src, fmt.Sprintf("metadata.annotations[%q]: not supported by this version of sluice; ignored", k))
	}
}
