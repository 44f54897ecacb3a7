package config

import (
	"strings"
	"testing"
	"time"
)

func TestTLSDefaults(t *testing.T) {
	cfg, err := Load(Sources{})
	if err != nil {
		t.Fatal(err)
	}
	tl := cfg.TLS
	if tl.Issuer != "local" || tl.OnDemand.Enabled || tl.OnDemand.Rate.Burst != 10 || tl.OnDemand.Rate.Interval != time.Minute ||
		tl.ClientAuth.Verify != "off" || !tl.Redirect.Enabled || tl.HSTS.MaxAge != 0 {
		t.Fatalf("tls defaults: %+v", tl)
	}
}

func TestTLSKeys(t *testing.T) {
	file := writeFile(t, "c.yaml", `tls:
  issuer: acme
  storage: /var/lib/sluice
  hosts: [a.example.com, b.example.com]
  acme:
    ca: https://acme.example.com/directory
    email: ops@example.com
    trusted_roots: ca.pem
    eab: {key_id: kid, mac_key: bWFj}
    preferred_chains: {root_common_name: [ISRG Root X1]}
    disable_http_challenge: true
  on_demand:
    enabled: true
    ask: http://127.0.0.1:9000/ask
    rate: {burst: 3, interval: 10s}
  client_auth: {verify: optional, ca: clients.pem, depth: 2}
  redirect: {enabled: false, port: 443}
  hsts: {max_age: 8760h, include_subdomains: true}
`)
	cfg, err := Load(Sources{File: file, Env: []string{"SLUICE_TLS_ON_DEMAND_RATE_BURST=5"}})
	if err != nil {
		t.Fatal(err)
	}
	tl := cfg.TLS
	if tl.Issuer != "acme" || tl.ACME.CA != "https://acme.example.com/directory" || tl.ACME.EAB.KeyID != "kid" ||
		len(tl.Hosts) != 2 || tl.ACME.PreferredChains.RootCommonName[0] != "ISRG Root X1" || !tl.ACME.DisableHTTPChallenge ||
		!tl.OnDemand.Enabled || tl.OnDemand.Rate.Burst != 5 || tl.OnDemand.Rate.Interval != 10*time.Second ||
		tl.ClientAuth.Depth != 2 || tl.Redirect.Enabled || tl.Redirect.Port != 443 || tl.HSTS.MaxAge != 8760*time.Hour {
		t.Fatalf("got %+v", tl)
	}
}

func TestTLSValidate(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want string // the start of the error
	}{
		{"tls: {issuer: self}", `config key tls.issuer: "self" is not one of local, acme`},
		{"tls: {issuer: acme}", "config key tls.acme.ca: must be set when tls.issuer is acme"},
		{"tls: {acme: {ca: http://insecure/dir}}", `config key tls.acme.ca: "http://insecure/dir" is not an https:// URL`},
		{"tls: {acme: {email: nobody}}", `config key tls.acme.email: "nobody" is not an email address`},
		{"tls: {acme: {eab: {key_id: k}}}", "config key tls.acme.eab: key_id and mac_key must be set together"},
		{"tls: {acme: {disable_http_challenge: true, disable_tlsalpn_challenge: true}}", "config key tls.acme.disable_tlsalpn_challenge: both challenge types are disabled"},
		{"tls: {hosts: [\"a b\"]}", `config key tls.hosts: [0] "a b" is not a DNS name`},
		{"tls: {on_demand: {ask: ftp://x}}", `config key tls.on_demand.ask: "ftp://x" is not an http(s) URL`},
		{"tls: {on_demand: {rate: {burst: 0}}}", "config key tls.on_demand.rate.burst: 0 must be at least 1"},
		{"tls: {on_demand: {rate: {interval: 0s}}}", "config key tls.on_demand.rate.interval: 0s must be positive"},
		{"tls: {client_auth: {verify: yes}}", `config key tls.client_auth.verify: "yes" is not one of on, optional, optional_no_ca, off`},
		{"tls: {client_auth: {verify: \"on\"}}", "config key tls.client_auth.ca: must be set when tls.client_auth.verify is on"},
		{"tls: {client_auth: {depth: 0}}", "config key tls.client_auth.depth: 0 is outside 1..16"},
		{"tls: {client_auth: {crl: x.crl}}", "config key tls.client_auth.crl: set without tls.client_auth.ca"},
		{"tls: {certificates: [{cert: a.pem}]}", "config key tls.certificates: [0]: cert and key must both be set"},
		{"tls: {redirect: {port: 70000}}", "config key tls.redirect.port: 70000 is not a port"},
		{"tls: {hsts: {max_age: -1s}}", "config key tls.hsts.max_age: -1s is negative"},
		{"tls: {on_demand: {enabeld: true}}", `unknown key "tls.on_demand.enabeld" (did you mean "tls.on_demand.enabled"?)`},
	} {
		_, err := Load(Sources{File: writeFile(t, "c.yaml", tc.yaml)})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got: %v\nwant: %s", tc.yaml, err, tc.want)
		}
	}
}
