package tlsmgr_test

import (
	"crypto/tls"
	"fmt"

	"github.com/sluicegw/sluice/core/internal/tlsmgr"
)

// Per-host client certificate policies on one listener: the listener's
// GetConfigForClient picks the host's config from the SNI.
func ExampleNewPolicies() {
	base := &tls.Config{MinVersion: tls.VersionTLS12}
	pol, err := tlsmgr.NewPolicies(base, map[string]tlsmgr.HostPolicy{
		"shop.example.com":   {TLS: true, Redirect: true},
		"*.api.example.com":  {TLS: true, ClientAuth: tlsmgr.ClientAuth{Verify: tlsmgr.VerifyOptionalNoCA}},
		"admin.example.com":  {TLS: true, ClientAuth: tlsmgr.ClientAuth{Verify: tlsmgr.VerifyOn}}, // no CAs: refused
		"plain.example.com":  {},
		"":                   {TLS: true}, // the catch-all has no policy
		"other.example.com.": {HSTS: "max-age=60"},
	})
	fmt.Println("error:", err)
	base.GetConfigForClient = pol.ConfigForClient

	for _, host := range []string{"shop.example.com", "v1.api.example.com", "admin.example.com", "OTHER.example.com"} {
		p := pol.Lookup(host)
		if p == nil {
			fmt.Printf("%s: no policy\n", host)
			continue
		}
		cfg, _ := pol.ConfigForClient(&tls.ClientHelloInfo{ServerName: host})
		fmt.Printf("%s: redirect=%v mtls=%v own config=%v hsts=%q\n", host, p.Redirect, p.ClientAuth.Enabled(), cfg != nil, p.HSTS)
	}
	// Output:
	// error: host admin.example.com: verify on needs a client CA bundle; every client certificate is refused
	// shop.example.com: redirect=true mtls=false own config=false hsts=""
	// v1.api.example.com: redirect=false mtls=true own config=true hsts=""
	// admin.example.com: redirect=false mtls=true own config=true hsts=""
	// OTHER.example.com: redirect=false mtls=false own config=false hsts="max-age=60"
}
