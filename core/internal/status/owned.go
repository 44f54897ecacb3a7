package status

import (
	"slices"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Owned returns the Ingresses whose status is the gateway's to write:
// those of its classes, by the rules translate uses to serve them (an
// IngressClass of that name decides by its spec.controller; a class name
// without an IngressClass is ours when classNames lists it; an Ingress
// without a class is ours when one of our IngressClasses is the default).
// Translate keeps those rules unexported; TestOwnedMatchesTranslate holds
// the two in step.
func Owned(ingresses []*networkingv1.Ingress, classes []*networkingv1.IngressClass, controller string, classNames []string) []types.NamespacedName {
	byName := map[string]*networkingv1.IngressClass{}
	isDefault := false
	for _, c := range classes {
		if c == nil {
			continue
		}
		if _, dup := byName[c.Name]; !dup {
			byName[c.Name] = c
		}
		if c.Spec.Controller == controller && c.Annotations[networkingv1.AnnotationIsDefaultIngressClass] == "true" {
			isDefault = true
		}
	}
	ours := func(name string) bool {
		if c, ok := byName[name]; ok {
			return c.Spec.Controller == controller
		}
		return slices.Contains(classNames, name)
	}
	var out []types.NamespacedName
	seen := map[types.NamespacedName]bool{}
	for _, ing := range ingresses {
		if ing == nil {
			continue
		}
		var mine bool
		switch {
		case ing.Spec.IngressClassName != nil && *ing.Spec.IngressClassName != "":
			mine = ours(*ing.Spec.IngressClassName)
		case ing.Annotations["kubernetes.io/ingress.class"] != "":
			mine = ours(ing.Annotations["kubernetes.io/ingress.class"])
		default:
			mine = isDefault
		}
		n := types.NamespacedName{Namespace: ing.Namespace, Name: ing.Name}
		if mine && !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}
