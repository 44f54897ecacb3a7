package policy

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseMTLSIdentity(t *testing.T) {
	for _, tc := range []struct{ in, err string }{
		{``, ""},
		{`{"allow":[{"spiffe_id":"spiffe://a/b"},{"spiffe_prefix":"spiffe://a/"},{"trust_domain":"a.test","cn":"x.*","o":"Shop","subject":".*","issuer":"CN=ca"},{"dns":"*.a.test"}],"deny":[{"dns":"x.a.test"}],"no_cert_status":403,"denied_status":404,"forward":"ssl-client"}`, ""},
		{`{"allow":[{}]}`, "allow[0]: a rule needs at least one of"},
		{`{"allow":[{"spiffe_id":"web"}]}`, `allow[0].spiffe_id: "web": want spiffe://`},
		{`{"deny":[{"spiffe_prefix":"http://x"}]}`, `deny[0].spiffe_prefix`},
		{`{"allow":[{"trust_domain":"spiffe://a"}]}`, `allow[0].trust_domain`},
		{`{"allow":[{"dns":"a*.test"}]}`, `allow[0].dns`},
		{`{"allow":[{"dns":"*x.test"}]}`, `allow[0].dns`},
		{`{"allow":[{"cn":"("}]}`, `allow[0].cn: error parsing regexp`},
		{`{"no_cert_status":200}`, `no_cert_status: 200: want a 4xx status`},
		{`{"denied_status":500}`, `denied_status: 500`},
		{`{"forward":"yes"}`, `forward: "yes"`},
		{`{"allow":[{"spiffe":"x"}]}`, `unknown field "spiffe"`},
	} {
		_, err := ParseMTLSIdentity([]byte(tc.in))
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: error %v, want %q", tc.in, err, tc.err)
		}
	}
}

func TestIdentityRules(t *testing.T) {
	m, err := ParseMTLSIdentity([]byte(`{
		"allow":[{"trust_domain":"shop.test"},{"dns":"*.svc.test"},{"o":"Partner","issuer":"CN=partner ca"}],
		"deny":[{"spiffe_id":"spiffe://shop.test/banned"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id   Identity
		want bool
	}{
		{Identity{SPIFFEID: "spiffe://shop.test/web"}, true},
		{Identity{SPIFFEID: "spiffe://SHOP.test/web"}, true},
		{Identity{SPIFFEID: "spiffe://shop.testx/web"}, false},
		{Identity{SPIFFEID: "spiffe://shop.test/banned"}, false},
		{Identity{DNSNames: []string{"A.svc.test"}}, true},
		{Identity{DNSNames: []string{"svc.test"}}, false},
		{Identity{DNSNames: []string{"a.b.svc.test"}}, false},
		{Identity{Subject: "CN=x,O=Partner", Issuer: "CN=partner ca"}, true},
		{Identity{Subject: "CN=x,O=Partner", Issuer: "CN=other"}, false},
		{Identity{Subject: "CN=x,O=Partners", Issuer: "CN=partner ca"}, false}, // whole-string match
		{Identity{}, false},
	} {
		if got := m.Allowed(tc.id); got != tc.want {
			t.Errorf("Allowed(%+v) = %v, want %v", tc.id, got, tc.want)
		}
	}
	open, _ := ParseMTLSIdentity(nil)
	if !open.Allowed(Identity{Subject: "CN=anyone"}) {
		t.Error("no rules: a verified certificate must be allowed")
	}
}

func TestParseDN(t *testing.T) {
	got := ParseDN(`CN=a\,b,O=Shop+O=Other,C=DE`)
	want := map[string][]string{"CN": {"a,b"}, "O": {"Shop", "Other"}, "C": {"DE"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseDN = %v, want %v", got, want)
	}
}

func TestXFCC(t *testing.T) {
	got := XFCC(Identity{SHA256: "ab12", Subject: `CN=a "b",O=Shop`, URIs: []string{"spiffe://shop.test/web"}, DNSNames: []string{"web.test"}})
	want := `Hash=ab12;Subject="CN=a \"b\",O=Shop";URI=spiffe://shop.test/web;DNS=web.test`
	if got != want {
		t.Errorf("XFCC = %s\nwant   %s", got, want)
	}
}

func FuzzParseMTLSIdentity(f *testing.F) {
	f.Add([]byte(`{"allow":[{"dns":"*.a.test","cn":"x"}],"forward":"xfcc"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMTLSIdentity(b)
		if err != nil {
			return
		}
		_ = m.Allowed(Identity{Subject: string(b), DNSNames: []string{string(b)}, SPIFFEID: "spiffe://" + string(b)})
	})
}
