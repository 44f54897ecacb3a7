package translate

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/sluicegw/sluice/core/internal/model"
)

// appProtocolH2C is the Service port appProtocol for HTTP/2 over cleartext.
const appProtocolH2C = "kubernetes.io/h2c"

// checkBackendRef checks what the API server would check in an
// IngressBackend. It returns "" or a message starting with the field below
// the backend (".service.port: ...") so callers can prefix their own field.
func checkBackendRef(be *networkingv1.IngressBackend) string {
	switch {
	case be.Resource != nil && be.Service != nil:
		return ": only one of service and resource may be set"
	case be.Resource != nil:
		return fmt.Sprintf(".resource: %s backends are not supported (only service backends are)", be.Resource.Kind)
	case be.Service == nil:
		return ": service is required"
	case be.Service.Name == "":
		return ".service.name: required"
	case be.Service.Port.Name != "" && be.Service.Port.Number != 0:
		return ".service.port: only one of name and number may be set"
	case be.Service.Port.Name == "" && be.Service.Port.Number == 0:
		return ".service.port: one of name and number is required"
	case be.Service.Port.Number < 0 || be.Service.Port.Number > 65535:
		return fmt.Sprintf(".service.port.number: %d is not a port number", be.Service.Port.Number)
	}
	return ""
}

// backendField names the backend field of an Ingress: spec.defaultBackend
// (rule -1) or spec.rules[rule].http.paths[path].backend. It is formatted
// only for warnings.
type backendField struct{ rule, path int }

func (f backendField) String() string {
	if f.rule < 0 {
		return "spec.defaultBackend"
	}
	return fmt.Sprintf("spec.rules[%d].http.paths[%d].backend", f.rule, f.path)
}

// backend resolves a checked service reference in namespace ns to a Backend.
// A Service or port that does not exist gives a Backend without endpoints
// (the route answers 503) and a warning on src at field.
func (b *builder) backend(src model.ObjectRef, field backendField, ns string, ref *networkingv1.IngressServiceBackend) *model.Backend {
	k := backendKey{ns: ns, svc: ref.Name, portName: ref.Port.Name}
	if k.portName == "" {
		k.portNum = ref.Port.Number
	}
	be, cached := b.backends[k]
	if !cached {
		portRef := k.portName
		if portRef == "" {
			portRef = strconv.Itoa(int(k.portNum))
		}
		be = &model.Backend{
			Name:      ns + "/" + ref.Name + ":" + portRef,
			Service:   model.ObjectRef{Kind: "Service", Namespace: ns, Name: ref.Name},
			Protocol:  model.ProtocolHTTP,
			Balancer:  b.opts.Balancer,
			Endpoints: []string{},
			Timeouts:  b.opts.Timeouts,
		}
		b.backends[k] = be
	}
	svc := b.services[nsName{ns, ref.Name}]
	if svc == nil {
		b.warn(src, fmt.Sprintf("%s.service.name: %s not found; the route answers 503 until it exists", field, be.Service))
		return be
	}
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		b.warn(src, fmt.Sprintf("%s.service.name: %s is of type ExternalName, which is not supported; the route answers 503", field, be.Service))
		return be
	}
	port, portIndex, msg := findServicePort(svc, ref.Port)
	if msg != "" {
		sub := "number"
		if k.portName != "" {
			sub = "name"
		}
		b.warn(src, fmt.Sprintf("%s.service.port.%s: %s %s; the route answers 503", field, sub, be.Service, msg))
		return be
	}
	if cached {
		return be
	}
	if ap := port.AppProtocol; ap != nil {
		switch *ap {
		case appProtocolH2C:
			be.Protocol = model.ProtocolH2C
		case "", "http", "kubernetes.io/ws":
		default:
			b.warn(be.Service, fmt.Sprintf("spec.ports[%d].appProtocol: %q is not supported (only http, kubernetes.io/ws and kubernetes.io/h2c are); spoken to as HTTP/1.1", portIndex, *ap))
		}
	}
	be.Endpoints = b.resolveEndpoints(ns, svc.Name, port.Name)
	return be
}

// findServicePort finds the TCP port of svc that ref names, by number or
// name, and its index in spec.ports.
func findServicePort(svc *corev1.Service, ref networkingv1.ServiceBackendPort) (*corev1.ServicePort, int, string) {
	var udp bool
	for i := range svc.Spec.Ports {
		p := &svc.Spec.Ports[i]
		if (ref.Name != "" && p.Name != ref.Name) || (ref.Name == "" && p.Port != ref.Number) {
			continue
		}
		if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
			udp = true
			continue
		}
		return p, i, ""
	}
	what := strconv.Quote(ref.Name)
	if ref.Name == "" {
		what = strconv.Itoa(int(ref.Number))
	}
	if udp {
		return nil, -1, "port " + what + " is not a TCP port"
	}
	return nil, -1, "has no port " + what
}

// resolveEndpoints returns the ready "ip:port" endpoints of the Service port
// named portName ("" for an unnamed port), sorted and deduplicated.
func (b *builder) resolveEndpoints(ns, svc, portName string) []string {
	out := []string{}
	for _, s := range b.endpoints[nsName{ns, svc}] {
		sref := model.ObjectRef{Kind: "EndpointSlice", Namespace: s.Namespace, Name: s.Name}
		if s.AddressType != discoveryv1.AddressTypeIPv4 && s.AddressType != discoveryv1.AddressTypeIPv6 {
			b.warn(sref, fmt.Sprintf("addressType: %q is not supported (only IPv4 and IPv6 are); slice ignored", string(s.AddressType)))
			continue
		}
		port, ok := slicePort(s, portName)
		if !ok {
			continue
		}
		for i := range s.Endpoints {
			ep := &s.Endpoints[i]
			// The API documents a nil ready condition as "ready".
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			if len(ep.Addresses) == 0 {
				continue
			}
			// Addresses are fungible; the API lets consumers use the first.
			addr, msg := b.checkAddress(s.AddressType, ep.Addresses[0])
			if msg != "" {
				b.warn(sref, fmt.Sprintf("endpoints[%d].addresses[0]: %q %s; endpoint ignored", i, ep.Addresses[0], msg))
				continue
			}
			// The same text as net.JoinHostPort(addr.String(), port) for
			// the zone-less addresses checkAddress lets through, in one
			// allocation instead of three.
			out = append(out, netip.AddrPortFrom(addr, uint16(port)).String())
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// slicePort finds the TCP port of the slice named after the Service port.
func slicePort(s *discoveryv1.EndpointSlice, name string) (int32, bool) {
	for _, p := range s.Ports {
		pn := ""
		if p.Name != nil {
			pn = *p.Name
		}
		if pn != name || p.Port == nil || *p.Port < 1 || *p.Port > 65535 {
			continue
		}
		if p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP {
			continue
		}
		return *p.Port, true
	}
	return 0, false
}

// checkAddress parses an endpoint address of the slice's address type and
// rejects the addresses the API server rejects (loopback is allowed with
// Options.AllowLoopback).
func (b *builder) checkAddress(t discoveryv1.AddressType, s string) (netip.Addr, string) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, "is not an IP address"
	}
	if (t == discoveryv1.AddressTypeIPv4) != a.Is4() {
		return netip.Addr{}, "is not an " + string(t) + " address"
	}
	switch {
	case a.IsUnspecified():
		return netip.Addr{}, "is the unspecified address"
	case a.IsLoopback() && !b.opts.AllowLoopback:
		return netip.Addr{}, "is a loopback address (allowed in standalone mode only)"
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast(), a.IsInterfaceLocalMulticast():
		return netip.Addr{}, "is a link-local address"
	}
	return a, ""
}
