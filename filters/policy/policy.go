// Package policy parses and validates the configs of the built-in filters
// and holds their pure helpers (client address, bucket keys). It is shared
// by the filters themselves, compiled to wasm, and by the gateway, which
// validates a route's config when it loads the route: a bad config is
// refused there, with the field named, instead of failing on the first
// request. It depends on the standard library only, and only on packages
// that keep a wasm guest small (no net, no fmt).
package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
)

// decode unmarshals the JSON config b into v, refusing unknown fields so
// that a misspelt key is an error, not a silently ignored setting. An empty
// config leaves v as it is.
func decode(b []byte, v any) error {
	if len(bytes.TrimSpace(b)) == 0 || string(bytes.TrimSpace(b)) == "null" {
		return nil
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return errors.New(te.Field + ": want a " + te.Type.String() + ", got a JSON " + te.Value)
		}
		return errors.New(strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

// fieldError is an error about one field of a config, e.g.
// "limits[1].rate: must be at least 1".
func fieldError(field, msg string) error { return errors.New(field + ": " + msg) }

// HostOf returns the address of "IP:port", "[IPv6]:port" or a bare IP,
// without the port.
func HostOf(addr string) string {
	// The common case, "a.b.c.d:port", without allocating: netip accepts
	// only the canonical dotted form, so the text is already canonical.
	if i := strings.LastIndexByte(addr, ':'); i > 0 && strings.IndexByte(addr[:i], ':') < 0 {
		if a, err := netip.ParseAddr(addr[:i]); err == nil && a.Is4() {
			if _, err := netip.ParseAddrPort(addr); err == nil {
				return addr[:i]
			}
		}
	}
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return ap.Addr().Unmap().String()
	}
	return strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
}
