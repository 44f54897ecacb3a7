package config

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestObservabilityKeys(t *testing.T) {
	file := writeFile(t, "c.yaml", `admin_addr: 0.0.0.0:9901
admin:
  token: from-the-file-0123456789
  pprof: true
log:
  access_format: json
  access_fields: [request_id, status, traceparent]
request_id:
  trusted_proxies: [10.0.0.0/8, "::1", 192.168.1.7]
`)
	cfg, err := Load(Sources{File: file, Env: []string{"SLUICE_ADMIN_TOKEN=from-the-environment-0123"}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Admin.Token != "from-the-environment-0123" || !cfg.Admin.PProf {
		t.Errorf("admin: %+v", cfg.Admin)
	}
	if cfg.Log.AccessFormat != "json" || !slices.Equal(cfg.Log.AccessFields, []string{"request_id", "status", "traceparent"}) {
		t.Errorf("log: %+v", cfg.Log)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("192.168.1.7/32")}
	if got := cfg.RequestID.TrustedRequestIDPeers(); !slices.Equal(got, want) {
		t.Errorf("trusted peers %v, want %v", got, want)
	}
}

func TestObservabilityDefaults(t *testing.T) {
	cfg, err := Load(Sources{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Admin != (Admin{}) || cfg.Log.AccessFormat != "" || cfg.Log.AccessFields != nil || len(cfg.RequestID.TrustedProxies) != 0 {
		t.Errorf("defaults: admin %+v, log %+v, request_id %+v", cfg.Admin, cfg.Log, cfg.RequestID)
	}
	if !cfg.AdminLoopback() {
		t.Errorf("the default admin_addr %q must be loopback", cfg.AdminAddr)
	}
}

func TestAdminLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:9901": true, "[::1]:9901": true, "localhost:9901": true, "127.8.9.1:1": true,
		":9901": false, "0.0.0.0:9901": false, "[::]:9901": false, "10.1.2.3:9901": false, "admin.example:9901": false,
	} {
		c := &Config{AdminAddr: addr}
		if got := c.AdminLoopback(); got != want {
			t.Errorf("AdminLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestObservabilityInvalid(t *testing.T) {
	for name, tc := range map[string]struct {
		yaml string
		env  []string
		want string
	}{
		"token required off loopback": {"admin_addr: 0.0.0.0:9901\n", nil,
			`config key admin.token: must be set when admin_addr ("0.0.0.0:9901") is not a loopback address`},
		"token required on all interfaces": {"admin_addr: \":9901\"\n", nil, "config key admin.token: must be set"},
		"short token":                      {"admin:\n  token: short\n", nil, "config key admin.token: must be at least 16 characters"},
		"token with a space":               {"", []string{"SLUICE_ADMIN_TOKEN=0123456789 abcdefgh"}, "config key admin.token: must be at least 16 characters without whitespace"},
		"access format":                    {"log:\n  access_format: xml\n", nil, `config key log.access_format: "xml" is not one of text, json`},
		"unknown field":                    {"log:\n  access_fields: [status, cookie]\n", nil, `config key log.access_fields: [1]: "cookie" is not a field`},
		"field twice":                      {"log:\n  access_fields: [status, path, status]\n", nil, `config key log.access_fields: [2]: "status" is listed twice`},
		"bad proxy":                        {"request_id:\n  trusted_proxies: [10.0.0.0/8, nope]\n", nil, `config key request_id.trusted_proxies: [1]: "nope" is not an address or CIDR`},
		"typo":                             {"admin:\n  pprov: true\n", nil, `unknown key "admin.pprov" (did you mean "admin.pprof"?)`},
	} {
		t.Run(name, func(t *testing.T) {
			file := writeFile(t, "c.yaml", tc.yaml)
			_, err := Load(Sources{File: file, Env: tc.env})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
	// Off loopback with a token: fine.
	file := writeFile(t, "c.yaml", "admin_addr: 0.0.0.0:9901\n")
	if _, err := Load(Sources{File: file, Env: []string{"SLUICE_ADMIN_TOKEN=0123456789abcdefgh"}}); err != nil {
		t.Fatal(err)
	}
}
