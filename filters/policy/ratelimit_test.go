package policy

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseRateLimit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want *RateLimit
		err  string
	}{
		{in: `{"rate":10}`, want: &RateLimit{OnUnavailable: "allow", Limits: []Limit{
			{Name: "default", Rate: 10, Period: time.Second, Burst: 10, Key: []KeyPart{{Kind: "client_ip"}}}}}},
		{in: `{"rate":5,"period":"1m","burst":20,"key":"tls_identity + header:X-Api-Key","trusted_proxies":["10.0.0.0/8","192.0.2.1"],"on_unavailable":"deny"}`,
			want: &RateLimit{OnUnavailable: "deny",
				TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.1/32")},
				Limits: []Limit{{Name: "default", Rate: 5, Period: time.Minute, Burst: 20,
					Key: []KeyPart{{Kind: "tls_identity"}, {Kind: "header", Header: "x-api-key"}}}}}},
		{in: `{"limits":[{"rate":1,"key":"route"},{"name":"h","rate":2,"key":"host"}]}`, want: &RateLimit{OnUnavailable: "allow", Limits: []Limit{
			{Name: "limit0", Rate: 1, Period: time.Second, Burst: 1, Key: []KeyPart{{Kind: "route"}}},
			{Name: "h", Rate: 2, Period: time.Second, Burst: 2, Key: []KeyPart{{Kind: "host"}}}}}},
		{in: ``, err: "rate: required"},
		{in: `{}`, err: "rate: required"},
		{in: `[]`, err: "cannot unmarshal"},
		{in: `{"rate":"lots"}`, err: "rate: want a int, got a JSON string"},
		{in: `{"rate":-1}`, err: "rate: must be at least 1"},
		{in: `{"rate":1,"burst":-1}`, err: "burst: must be at least 1"},
		{in: `{"rate":1,"period":"soon"}`, err: `period: "soon": want a duration`},
		{in: `{"rate":1,"period":"0s"}`, err: `period: "0s"`},
		{in: `{"rate":1,"key":"cookie"}`, err: `key: "cookie": want client_ip`},
		{in: `{"rate":1,"key":"header:"}`, err: `key: "header:"`},
		{in: `{"rate":1,"key":"header:a b"}`, err: `key: "header:a b"`},
		{in: `{"rate":1,"limits":[{"rate":1}]}`, err: "limits: give either"},
		{in: `{"limits":[{"rate":1},{"rate":0}]}`, err: "limits[1].rate: must be at least 1"},
		{in: `{"limits":[{"name":"a","rate":1},{"name":"a","rate":1}]}`, err: `limits[1].name: "a" is used twice`},
		{in: `{"limits":[{"name":"a b","rate":1}]}`, err: `limits[0].name: "a b"`},
		{in: `{"rate":1,"trusted_proxies":["proxy"]}`, err: `trusted_proxies[0]: "proxy"`},
		{in: `{"rate":1,"on_unavailable":"maybe"}`, err: `on_unavailable: "maybe"`},
		{in: `{"rate":1,"burst_size":2}`, err: `unknown field "burst_size"`},
	} {
		got, err := ParseRateLimit([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %+v, %v\nwant %+v", tc.in, got, err, tc.want)
		}
	}
}

// TestHostOf: the allocation-free IPv4 path and the general one agree.
func TestHostOf(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1:5000":        "192.0.2.1",
		"192.0.2.1":             "192.0.2.1",
		"192.0.2.01:5000":       "192.0.2.01:5000", // not an address: unchanged
		"192.0.2.1:http":        "192.0.2.1:http",
		"[2001:db8::1]:443":     "2001:db8::1",
		"[::ffff:192.0.2.1]:80": "192.0.2.1",
		"[2001:db8::1]":         "2001:db8::1",
	} {
		if got := HostOf(in); got != want {
			t.Errorf("HostOf(%q) = %q, want %q", in, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { HostOf("192.0.2.1:5000") }); n != 0 {
		t.Errorf("HostOf of an IPv4 address allocates %v times", n)
	}
}

func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	for _, tc := range []struct {
		source string
		xff    []string
		want   string
	}{
		{"192.0.2.1:5000", nil, "192.0.2.1"},
		{"192.0.2.1:5000", []string{"198.51.100.1"}, "192.0.2.1"},                          // untrusted peer: XFF ignored
		{"10.1.1.1:5000", []string{"198.51.100.1"}, "198.51.100.1"},                        // trusted peer
		{"10.1.1.1:5000", []string{"203.0.113.9, 198.51.100.1, 10.2.2.2"}, "198.51.100.1"}, // right-most untrusted
		{"10.1.1.1:5000", []string{"198.51.100.1", "10.2.2.2"}, "198.51.100.1"},            // several header lines
		{"10.1.1.1:5000", []string{"10.3.3.3, 10.2.2.2"}, "10.3.3.3"},                      // every hop trusted: the left-most
		{"10.1.1.1:5000", []string{"junk, 10.2.2.2"}, "10.2.2.2"},                          // a non-address stops the walk
		{"10.1.1.1:5000", []string{"[2001:db8::1]:443"}, "2001:db8::1"},
		{"[::1]:80", []string{"198.51.100.1"}, "198.51.100.1"},
		{"[::ffff:192.0.2.1]:80", nil, "192.0.2.1"},
	} {
		if got := ClientIP(tc.source, tc.xff, trusted); got != tc.want {
			t.Errorf("ClientIP(%q, %q) = %q, want %q", tc.source, tc.xff, got, tc.want)
		}
	}
}

func TestHeaders(t *testing.T) {
	rl, err := ParseRateLimit([]byte(`{"limits":[{"name":"a","rate":10,"period":"1s"},{"name":"b","rate":100,"period":"1500ms"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rl.PolicyHeader(), `"a";q=10;w=1, "b";q=100;w=2`; got != want {
		t.Errorf("PolicyHeader() = %q, want %q", got, want)
	}
	if got, want := StateHeader("a", 3, 0), `"a";r=3;t=0`; got != want {
		t.Errorf("StateHeader = %q, want %q", got, want)
	}
	for d, want := range map[time.Duration]string{0: "1", time.Millisecond: "1", time.Second: "1", 1001 * time.Millisecond: "2", time.Minute: "60"} {
		if got := RetryAfter(d); got != want {
			t.Errorf("RetryAfter(%s) = %q, want %q", d, got, want)
		}
	}
}

func FuzzParseRateLimit(f *testing.F) {
	for _, s := range []string{`{"rate":1}`, `{"limits":[{"rate":1,"key":"route+header:x"}]}`, `{"rate":1,"trusted_proxies":["::1/128"]}`, `null`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		rl, err := ParseRateLimit(b)
		if err != nil {
			return
		}
		if len(rl.Limits) == 0 {
			t.Fatalf("%q: accepted with no limits", b)
		}
		for _, l := range rl.Limits {
			if l.Rate < 1 || l.Burst < 1 || l.Period < time.Millisecond || len(l.Key) == 0 {
				t.Fatalf("%q: accepted an invalid limit %+v", b, l)
			}
		}
		_ = rl.PolicyHeader()
	})
}
