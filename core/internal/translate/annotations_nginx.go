package translate

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/sluicegw/sluice/core/internal/model"
)

// NginxPrefix starts every ingress-nginx annotation.
const NginxPrefix = "nginx.ingress.kubernetes.io/"

// nginxAliases are the ingress-nginx annotations honoured by translating
// them into the sluice.io annotation of the same meaning. The value is
// checked here first, so a warning names the annotation the user wrote.
var nginxAliases = map[string]struct {
	sluice string
	// convert checks an ingress-nginx value and returns the sluice.io
	// value, or a problem; ns is the Ingress's namespace.
	convert func(ns, v string) (string, string)
}{
	NginxPrefix + "ssl-redirect":           {AnnotationSSLRedirect, nginxBool},
	NginxPrefix + "force-ssl-redirect":     {AnnotationSSLRedirect, nginxBool},
	NginxPrefix + "auth-tls-verify-client": {AnnotationClientVerify, nginxVerify},
	NginxPrefix + "auth-tls-verify-depth":  {AnnotationClientVerifyDepth, nginxDepth},
	NginxPrefix + "auth-tls-secret":        {AnnotationClientCASecret, nginxSecret},
}

// nginxRefused are ingress-nginx annotations that are refused, never
// ignored silently: snippets are raw nginx configuration.
var nginxRefused = map[string]string{
	NginxPrefix + "configuration-snippet": "snippet annotations inject raw nginx configuration; sluice never runs them",
	NginxPrefix + "server-snippet":        "snippet annotations inject raw nginx configuration; sluice never runs them",
	NginxPrefix + "auth-snippet":          "snippet annotations inject raw nginx configuration; sluice never runs them",
	NginxPrefix + "stream-snippet":        "snippet annotations inject raw nginx configuration; sluice never runs them",
	NginxPrefix + "modsecurity-snippet":   "snippet annotations inject raw nginx configuration; sluice never runs them",
}

// nginxAnnotations are the annotations for the ingress-nginx compatible subset (nginx.ingress.kubernetes.io/) that translate honours.
var nginxAnnotations = func() map[string]bool {
	out := map[string]bool{}
	for k := range nginxAliases {
		out[k] = true
	}
	for k := range nginxRoutingAliases { // annotations_nginx_routing.go
		out[k] = true
	}
	// Refused ones are reported by nginxCompat, not as "not supported".
	for k := range nginxRefused {
		out[k] = true
	}
	return out
}()

// nginxCompat returns ing with its honoured ingress-nginx annotations
// translated into their sluice.io equivalents, and warns about invalid,
// conflicting and refused ones. ing itself is never modified: when there is
// anything to translate, the result is a shallow copy with a new
// annotation map. A sluice.io annotation set on the Ingress wins over its
// ingress-nginx alias.
func (b *builder) nginxCompat(ing *networkingv1.Ingress, src model.ObjectRef) *networkingv1.Ingress {
	var keys []string
	for k := range ing.Annotations {
		if strings.HasPrefix(k, NginxPrefix) && nginxAnnotations[k] {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return ing
	}
	slices.Sort(keys)
	field := func(k string) string { return fmt.Sprintf("metadata.annotations[%q]", k) }
	var out map[string]string
	setBy := map[string]string{} // sluice key → nginx key that set it
	for _, k := range keys {
		v := ing.Annotations[k]
		if why, refused := nginxRefused[k]; refused {
			b.warn(src, fmt.Sprintf("%s: refused: %s", field(k), why))
			continue
		}
		alias, ok := nginxAliases[k]
		if !ok {
			alias = nginxRoutingAliases[k]
		}
		sv, problem := alias.convert(ing.Namespace, strings.TrimSpace(v))
		if problem != "" {
			b.warn(src, fmt.Sprintf("%s: %q %s; ignored", field(k), v, problem))
			continue
		}
		if own, ok := ing.Annotations[alias.sluice]; ok {
			if own != sv {
				b.warn(src, fmt.Sprintf("%s: %q conflicts with %s %q, which wins", field(k), v, field(alias.sluice), own))
			}
			continue
		}
		if prev, ok := setBy[alias.sluice]; ok {
			if out[alias.sluice] != sv {
				b.warn(src, fmt.Sprintf("%s: %q conflicts with %s %q, which wins", field(k), v, field(prev), ing.Annotations[prev]))
			}
			continue
		}
		if out == nil {
			out = maps.Clone(ing.Annotations)
		}
		out[alias.sluice] = sv
		setBy[alias.sluice] = k
	}
	if out == nil {
		return ing
	}
	cp := *ing
	cp.Annotations = out
	return &cp
}

func nginxBool(_, v string) (string, string) {
	bv, err := strconv.ParseBool(v)
	if err != nil {
		return "", "is not true or false"
	}
	return strconv.FormatBool(bv), ""
}

func nginxVerify(_, v string) (string, string) {
	switch v {
	case "on", "off", "optional", "optional_no_ca":
		return v, ""
	}
	return "", "is not one of on, off, optional, optional_no_ca"
}

func nginxDepth(_, v string) (string, string) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 16 {
		return "", "is not a number in 1..16"
	}
	return strconv.Itoa(n), ""
}

// nginxSecret takes "namespace/name" (ingress-nginx's form) or "name".
// The Secret must be in the Ingress's namespace: reading another
// namespace's Secret would let an Ingress use CAs its owner cannot read.
func nginxSecret(ns, v string) (string, string) {
	sns, name, qualified := strings.Cut(v, "/")
	if !qualified {
		sns, name = ns, v
	}
	switch {
	case name == "" || strings.Contains(name, "/"):
		return "", "is not namespace/name"
	case sns != ns:
		return "", fmt.Sprintf("names a Secret outside namespace %s", ns)
	}
	return name, ""
}
