package translate_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sluicegw/sluice/core/internal/manifest"
	"github.com/sluicegw/sluice/core/internal/translate"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  string
	}{
		{"0", 0, ""},
		{"1000", 1000, ""},
		{"1k", 1024, ""},
		{"8m", 8 << 20, ""},
		{"8M", 8 << 20, ""},
		{"2g", 2 << 30, ""},
		{"", 0, `"" is not a size`},
		{"m", 0, `"m" is not a size`},
		{"8mb", 0, `"8mb" is not a size`},
		{"-1", 0, `"-1" is not a size`},
		{"1.5m", 0, `"1.5m" is not a size`},
		{"9223372036854775807", 1<<63 - 1, ""},
		{"9223372036854775808", 0, "too large"},
		{"8589934592g", 0, "too large"},
	} {
		got, err := translate.ParseSize(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseSize(%q) = %d, %v; want error containing %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestParseRateLimit(t *testing.T) {
	got, err := translate.ParseRateLimit("10/s burst=20, 1000/h key=header:X-Api-Key+client_ip,5/m")
	if err != nil {
		t.Fatal(err)
	}
	want := []translate.RateLimit{
		{Rate: 10, Period: time.Second, Burst: 20, Key: "client_ip"},
		{Rate: 1000, Period: time.Hour, Burst: 1000, Key: "header:X-Api-Key+client_ip"},
		{Rate: 5, Period: time.Minute, Burst: 5, Key: "client_ip"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("limit %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	for in, msg := range map[string]string{
		"":                      `"": limit 0: empty`,
		"10":                    `"10": limit 0: "10" is not RATE/UNIT (10/s)`,
		"0/s":                   `"0/s": limit 0: rate "0" is not a whole number in 1..1000000000`,
		"10/d":                  `"10/d": limit 0: unit "d" is not s, m or h`,
		"10/s burst=0":          `"10/s burst=0": limit 0: burst "0" is not a whole number in 1..1000000000`,
		"10/s burst=1 burst=2":  `"10/s burst=1 burst=2": limit 0: burst is given twice`,
		"10/s rate=1":           `"10/s rate=1": limit 0: "rate=1" is not burst=N or key=KEY`,
		"10/s key=client-ip":    `"10/s key=client-ip": limit 0: key part "client-ip" is not client_ip, tls_identity, host, route or header:NAME`,
		"10/s key=header:":      `"10/s key=header:": limit 0: key part "header:" is not client_ip, tls_identity, host, route or header:NAME`,
		"10/s,":                 `"10/s,": limit 1: empty (want RATE/UNIT [burst=N] [key=KEY])`,
		"10/s, 5/m key=host+ro": `"10/s, 5/m key=host+ro": limit 1: key part "ro" is not client_ip, tls_identity, host, route or header:NAME`,
	} {
		_, err := translate.ParseRateLimit(in)
		if err == nil || !strings.HasPrefix(err.Error(), msg) {
			t.Errorf("ParseRateLimit(%q) error = %v, want prefix %q", in, err, msg)
		}
	}
}

func TestParseSourceRange(t *testing.T) {
	got, err := translate.ParseSourceRange(" 10.1.2.3/8 ,192.168.0.1, ::ffff:1.2.3.4, 2001:db8::1, ::ffff:10.0.0.0/104")
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, p := range got {
		s = append(s, p.String())
	}
	if g, w := strings.Join(s, " "), "10.0.0.0/8 192.168.0.1/32 1.2.3.4/32 2001:db8::1/128 10.0.0.0/8"; g != w {
		t.Errorf("got %s, want %s", g, w)
	}
	for _, in := range []string{"", " ", "10.0.0.0/8,", "fe80::1%eth0", "10.0.0.0/33", "host.example.com"} {
		if _, err := translate.ParseSourceRange(in); err == nil {
			t.Errorf("ParseSourceRange(%q) = nil error, want one", in)
		}
	}
}

// The parsers never panic, and what they accept is consistent.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "8m", "1k", "2G", "", "9223372036854775807", "8589934591g"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := translate.ParseSize(s)
		if err == nil && n < 0 {
			t.Fatalf("ParseSize(%q) = %d", s, n)
		}
	})
}

func FuzzParseRateLimit(f *testing.F) {
	for _, s := range []string{"10/s", "10/s burst=20, 1000/h key=header:X+host", "", ",", "1/m key=route burst=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ls, err := translate.ParseRateLimit(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), `"`) {
				t.Fatalf("error %q does not start with the quoted value", err)
			}
			return
		}
		for _, l := range ls {
			if l.Rate < 1 || l.Burst < 1 || l.Period <= 0 || l.Key == "" {
				t.Fatalf("ParseRateLimit(%q) accepted %+v", s, l)
			}
		}
	})
}

func FuzzParseSourceRange(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8", "1.2.3.4, ::1", "", ",", "::ffff:10.0.0.0/104", "fe80::1%eth0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := translate.ParseSourceRange(s)
		if err != nil {
			return
		}
		for _, p := range ps {
			if !p.IsValid() || p != p.Masked() || p.Addr().Is4In6() {
				t.Fatalf("ParseSourceRange(%q) gave %v", s, p)
			}
		}
	})
}

// The rate limits of the annotations believe the proxies the proxy does.
func TestRateLimitTrustedProxies(t *testing.T) {
	in, warnings := manifest.Decode("rl.yaml", []byte(`apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: shop
  annotations:
    nginx.ingress.kubernetes.io/limit-rps: "3"
spec:
  ingressClassName: sluice
  rules:
  - host: shop.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
`))
	if len(warnings) != 0 {
		t.Fatal(warnings)
	}
	snap, _ := translate.Translate(in, translate.Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.1/32")}})
	r := snap.Hosts[0].Routes[0]
	if len(r.Filters) != 1 || r.Filters[0].Name != "ratelimit" {
		t.Fatalf("filters %+v", r.Filters)
	}
	want := `{"limits":[{"name":"i` // the name is per Ingress
	got := string(r.Filters[0].Config)
	if !strings.HasPrefix(got, want) || !strings.HasSuffix(got, `"rate":3,"period":"1s","burst":15,"key":"client_ip"}],"trusted_proxies":["10.0.0.0/8","192.0.2.1/32"]}`) {
		t.Fatalf("config %s", got)
	}
}

// Options.MaxBodyBytes (proxy.max_body_size) is the limit of the routes
// whose Ingress sets none; "0" on an Ingress lifts it.
func TestDefaultBodySize(t *testing.T) {
	ing := func(name, size string) string {
		ann := ""
		if size != "" {
			ann = "\n  annotations: {nginx.ingress.kubernetes.io/proxy-body-size: \"" + size + "\"}"
		}
		return `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: ` + name + ann + `
spec:
  ingressClassName: sluice
  rules:
  - host: ` + name + `.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
`
	}
	in, warnings := manifest.Decode("b.yaml", []byte(ing("plain", "")+"---\n"+ing("unlimited", "0")+"---\n"+ing("big", "8m")))
	if len(warnings) != 0 {
		t.Fatal(warnings)
	}
	snap, _ := translate.Translate(in, translate.Options{MaxBodyBytes: 1024})
	got := map[string]int64{}
	for _, h := range snap.Hosts {
		if tr := h.Routes[0].Traffic; tr != nil {
			got[h.Name] = tr.MaxBodyBytes
		} else {
			got[h.Name] = -1 // no policy at all
		}
	}
	want := map[string]int64{"plain.example.com": 1024, "unlimited.example.com": -1, "big.example.com": 8 << 20}
	for h, w := range want {
		if got[h] != w {
			t.Errorf("%s: max body %d, want %d", h, got[h], w)
		}
	}
}
