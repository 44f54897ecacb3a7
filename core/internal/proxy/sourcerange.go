package proxy

import (
	"net/http"
	"net/netip"
	"strings"
)

// clientAddr is the address of the client: the peer's, or, when the peer is
// a trusted proxy, the right-most X-Forwarded-For address that is not a
// trusted proxy (the left-most if all are). Entries may carry a port or
// brackets ("192.0.2.1:80", "[2001:db8::1]:80"), as the rate limits'
// client_ip reads them. An unparsable entry stops the walk: nothing left
// of it can be believed. Zones are dropped (a zone would keep an address
// out of every prefix, deny ones included). The zero Addr means unknown.
func (h *Handler) clientAddr(r *http.Request) netip.Addr {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	client := peer.Addr().Unmap().WithZone("")
	if !h.trusted(client) {
		return client
	}
	xff := r.Header.Values("X-Forwarded-For")
	for i := len(xff) - 1; i >= 0; i-- {
		parts := strings.Split(xff[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a, ok := forwardedAddr(strings.TrimSpace(parts[j]))
			if !ok {
				return client
			}
			client = a
			if !h.trusted(client) {
				return client
			}
		}
	}
	return client
}

// forwardedAddr parses an X-Forwarded-For entry: an address, with or
// without a port and brackets. It returns the address unmapped and
// without zone.
func forwardedAddr(s string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	if inner, ok := strings.CutPrefix(s, "["); ok {
		if s, ok = strings.CutSuffix(inner, "]"); !ok {
			return netip.Addr{}, false
		}
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

// allowedSource applies a route's source ranges to the client address:
// denied when it is in deny (deny wins), or when allow is non-empty and
// it is not in allow. An unknown address is only allowed without ranges.
func allowedSource(client netip.Addr, allow, deny []netip.Prefix) bool {
	if len(allow) == 0 && len(deny) == 0 {
		return true
	}
	if !client.IsValid() {
		return false
	}
	for _, p := range deny {
		if p.Contains(client) {
			return false
		}
	}
	if len(allow) == 0 {
		return true
	}
	for _, p := range allow {
		if p.Contains(client) {
			return true
		}
	}
	return false
}
