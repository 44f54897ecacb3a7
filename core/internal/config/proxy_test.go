package config

import (
	"net/netip"
	"strings"
	"testing"
)

func TestProxyTrustedProxies(t *testing.T) {
	c := Default()
	c.Manifests = "/tmp"
	c.Proxy.TrustedProxies = []string{"10.0.0.0/8", "192.0.2.7", "2001:db8::/32"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("2001:db8::/32")}
	got := c.Proxy.TrustedPeers()
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	c.Proxy.TrustedProxies = []string{"10.0.0.0/8", "lb.example"}
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), `config key proxy.trusted_proxies: [1]: "lb.example" is not an address or CIDR`) {
		t.Fatalf("got %v", err)
	}
	if _, ok := Keys()["proxy.trusted_proxies"]; !ok {
		t.Fatal("proxy.trusted_proxies is not a known key")
	}
}

func TestProxyMaxBodySize(t *testing.T) {
	c := Default()
	c.Manifests = "/tmp"
	for v, want := range map[string]int64{"": 0, "0": 0, "1m": 1 << 20, "4096": 4096} {
		c.Proxy.MaxBodySize = v
		if err := c.Validate(); err != nil {
			t.Fatalf("%q: %v", v, err)
		}
		if got := c.Proxy.MaxBodyBytes(); got != want {
			t.Errorf("%q: %d bytes, want %d", v, got, want)
		}
	}
	c.Proxy.MaxBodySize = "1mb"
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), `config key proxy.max_body_size: "1mb" is not a size`) {
		t.Fatalf("got %v", err)
	}
}
