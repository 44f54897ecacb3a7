package proxy

import (
	"net/http/httputil"
	"net/netip"
	"strings"
)

// setForwarded sets X-Forwarded-For/-Proto/-Host and the RFC 7239
// Forwarded header on the outbound request. ReverseProxy has already
// removed all four from it. When the peer is a trusted proxy, the inbound
// values are kept (and For/Forwarded appended to); otherwise they are
// replaced by what this hop saw.
func (h *Handler) setForwarded(pr *httputil.ProxyRequest) {
	in, out := pr.In, pr.Out.Header
	peer, _ := netip.ParseAddrPort(in.RemoteAddr)
	client := peer.Addr().Unmap()
	trusted := client.IsValid() && h.trusted(client)

	proto := "http"
	if in.TLS != nil {
		proto = "https"
	}
	clientStr := ""
	if client.IsValid() {
		clientStr = client.String()
	}

	xff, fwd := clientStr, forwardedElement(client, in.Host, proto)
	xfProto, xfHost := proto, in.Host
	if trusted {
		if prior := in.Header["X-Forwarded-For"]; len(prior) > 0 {
			xff = strings.Join(prior, ", ") + ", " + xff
		}
		if prior := in.Header["Forwarded"]; len(prior) > 0 {
			fwd = strings.Join(prior, ", ") + ", " + fwd
		}
		if v := in.Header.Get("X-Forwarded-Proto"); v != "" {
			xfProto = v
		}
		if v := in.Header.Get("X-Forwarded-Host"); v != "" {
			xfHost = v
		}
	}
	// One backing array for the four values: one allocation, not four.
	vals := [...]string{xff, xfProto, xfHost, fwd}
	set := func(k string, i int) {
		if vals[i] != "" {
			out[k] = vals[i : i+1 : i+1]
		}
	}
	set("X-Forwarded-For", 0)
	set("X-Forwarded-Proto", 1)
	set("X-Forwarded-Host", 2)
	set("Forwarded", 3)
}

func (h *Handler) trusted(a netip.Addr) bool {
	for _, p := range h.opts.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwardedElement is one RFC 7239 element: for=, host=, proto=. IPv6
// addresses are bracketed and quoted; an unknown client is "unknown".
func forwardedElement(client netip.Addr, host, proto string) string {
	var b strings.Builder
	b.WriteString("for=")
	switch {
	case !client.IsValid():
		b.WriteString("unknown")
	case client.Is6():
		b.WriteString(`"[`)
		b.WriteString(client.String())
		b.WriteString(`]"`)
	default:
		b.WriteString(client.String())
	}
	if host != "" {
		b.WriteString(";host=")
		writeValue(&b, host)
	}
	b.WriteString(";proto=")
	b.WriteString(proto)
	return b.String()
}

// writeValue writes v as an RFC 7230 token if it is one, else as a
// quoted-string.
func writeValue(b *strings.Builder, v string) {
	if isToken(v) {
		b.WriteString(v)
		return
	}
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		if v[i] == '"' || v[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	b.WriteByte('"')
}

func isToken(v string) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
