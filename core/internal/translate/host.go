package translate

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/sluicegw/sluice/core/internal/model"
)

// maxHostLen is the longest DNS-1123 subdomain Kubernetes accepts, and
// maxLabelLen the longest DNS label.
const (
	maxHostLen  = 253
	maxLabelLen = 63
)

// normalizeHost lowercases an Ingress host and checks it the way the API
// server does: a DNS-1123 subdomain, or "*." followed by one; never an IP
// address. It also limits labels to 63 characters, as DNS does (the API
// server does not). "" (any host) is valid.
func normalizeHost(h string) (string, error) {
	if h == "" {
		return "", nil
	}
	h = strings.ToLower(h)
	if _, err := netip.ParseAddr(h); err == nil {
		return "", errors.New("must be a DNS name, not an IP address")
	}
	if len(h) > maxHostLen {
		return "", fmt.Errorf("must be at most %d characters", maxHostLen)
	}
	name := h
	if rest, ok := strings.CutPrefix(h, "*."); ok {
		name = rest
	}
	if strings.Contains(name, "*") {
		return "", errors.New(`a wildcard must be the whole first label, as in "*.example.com"`)
	}
	for label := range strings.SplitSeq(name, ".") {
		if err := checkLabel(label); err != nil {
			return "", err
		}
	}
	return h, nil
}

// checkLabel checks one DNS-1123 label: lowercase alphanumerics and '-',
// starting and ending with an alphanumeric.
func checkLabel(l string) error {
	if l == "" {
		return errors.New("must not contain an empty label")
	}
	if len(l) > maxLabelLen {
		return fmt.Errorf("label %q: must be at most %d characters", l, maxLabelLen)
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case c == '-' && i != 0 && i != len(l)-1:
		default:
			return fmt.Errorf("label %q: must consist of lowercase letters, digits and '-', and start and end with a letter or digit", l)
		}
	}
	return nil
}

// hostHasTLS reports whether some spec.tls entry of our Ingresses covers the
// virtual host. The catch-all host "" never has TLS.
func (b *builder) hostHasTLS(host string) bool {
	if host == "" {
		return false
	}
	if b.tlsHosts[host] {
		return true
	}
	if i := strings.IndexByte(host, '.'); i > 0 && host[0] != '*' {
		return b.tlsHosts["*"+host[i:]]
	}
	return false
}

// Path sequences the API server rejects in Exact and Prefix paths.
var (
	invalidPathSequences = []string{"//", "/./", "/../", "%2f", "%2F"}
	invalidPathSuffixes  = []string{"/..", "/."}
)

// pathKey returns the effective path type of p and its rule key: the path for
// Exact, the path without trailing slashes ("/" for the root) for Prefix. A
// non-empty msg ("field: problem") means the path is invalid.
//
// ImplementationSpecific is Prefix, and an empty ImplementationSpecific path
// is "/".
func pathKey(p *networkingv1.HTTPIngressPath) (pt model.PathType, key, msg string) {
	if p.PathType == nil {
		return "", "", "pathType: required (Exact, Prefix or ImplementationSpecific)"
	}
	path := p.Path
	switch *p.PathType {
	case networkingv1.PathTypeExact:
		pt = model.PathExact
	case networkingv1.PathTypePrefix:
		pt = model.PathPrefix
	case networkingv1.PathTypeImplementationSpecific:
		pt = model.PathPrefix
		if path == "" {
			path = "/"
		}
	default:
		return "", "", fmt.Sprintf("pathType: %q is not one of Exact, Prefix, ImplementationSpecific", string(*p.PathType))
	}
	if !strings.HasPrefix(path, "/") {
		return "", "", fmt.Sprintf("path: %q must start with \"/\"", p.Path)
	}
	for _, s := range invalidPathSequences {
		if strings.Contains(path, s) {
			return "", "", fmt.Sprintf("path: %q must not contain %q", p.Path, s)
		}
	}
	for _, s := range invalidPathSuffixes {
		if strings.HasSuffix(path, s) {
			return "", "", fmt.Sprintf("path: %q must not end with %q", p.Path, s)
		}
	}
	if pt == model.PathPrefix {
		return pt, prefixKey(path), ""
	}
	return pt, path, ""
}

// prefixKey is a Prefix path without its trailing slashes; "/" stays "/".
func prefixKey(path string) string {
	k := strings.TrimRight(path, "/")
	if k == "" {
		return "/"
	}
	return k
}

// displayPath is the path as written, with the empty ImplementationSpecific
// path shown as "/".
func displayPath(p string) string {
	if p == "" {
		return "/"
	}
	return p
}
