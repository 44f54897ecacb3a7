package core

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/sluicegw/sluice/core/internal/config"
	"github.com/sluicegw/sluice/core/internal/metrics"
	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/core/internal/tlsmgr"
)

// This file is the glue between the Gateway and package tlsmgr: the
// manager's options from the config, the per-snapshot host policies, and
// the HTTP(S) handlers that enforce them (redirect, HSTS, 421).

// tlsGlue is the Gateway's TLS part.
type tlsGlue struct {
	mgr       *tlsmgr.Manager
	base      *tls.Config  // the HTTPS listener's; mTLS hosts get clones
	httpsPort atomic.Int64 // the bound HTTPS port, for redirects
}

// tlsManagerOptions maps the tls.* config keys onto the manager's options.
func tlsManagerOptions(cfg *config.Config) (tlsmgr.Options, error) {
	t := cfg.TLS
	opts := tlsmgr.Options{
		Issuer:            t.Issuer,
		StoragePath:       t.Storage,
		DefaultServerName: t.DefaultServerName,
		OnDemand: tlsmgr.OnDemandOptions{
			Enabled:  t.OnDemand.Enabled,
			Ask:      t.OnDemand.Ask,
			Burst:    t.OnDemand.Rate.Burst,
			Interval: t.OnDemand.Rate.Interval,
		},
		ACME: tlsmgr.ACMEOptions{
			CA:               t.ACME.CA,
			Email:            t.ACME.Email,
			EABKeyID:         t.ACME.EAB.KeyID,
			EABMACKey:        t.ACME.EAB.MACKey,
			DisableHTTP01:    t.ACME.DisableHTTPChallenge,
			DisableTLSALPN01: t.ACME.DisableTLSALPNChallenge,
			PreferredChains: certmagic.ChainPreference{
				RootCommonName: t.ACME.PreferredChains.RootCommonName,
				AnyCommonName:  t.ACME.PreferredChains.AnyCommonName,
			},
		},
	}
	if t.ACME.PreferredChains.Smallest {
		smallest := true
		opts.ACME.PreferredChains.Smallest = &smallest
	}
	if t.ACME.TrustedRoots != "" {
		pool, err := readCAFile(t.ACME.TrustedRoots)
		if err != nil {
			return opts, fmt.Errorf("config key tls.acme.trusted_roots: %w", err)
		}
		opts.ACME.TrustedRoots = pool
	}
	return opts, nil
}

// initTLS creates the manager and the HTTPS listener's base tls.Config.
func (g *Gateway) initTLS(cfg *config.Config) error {
	opts, err := tlsManagerOptions(cfg)
	if err != nil {
		return err
	}
	opts.Logger = g.log
	// Cluster mode: the replicas share certificates and locks (kube.go).
	if opts.Storage, err = clusterStorage(cfg, g.opts.Env, g.log); err != nil {
		return err
	}
	m, err := tlsmgr.New(opts)
	if err != nil {
		return err
	}
	g.tls.mgr = m
	g.tls.base = &tls.Config{
		MinVersion: tls.VersionTLS12,
		// TLS 1.2 suites: ECDHE with AEAD only. TLS 1.3 suites are not
		// configurable and all modern.
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		NextProtos:     []string{"h2", "http/1.1", tlsmgr.ACMEProtocol},
		GetCertificate: m.GetCertificate,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			st := g.live.Load()
			if st == nil {
				return nil, nil
			}
			return st.policies.ConfigForClient(hello)
		},
	}
	return nil
}

// startTLS starts certificate management once the listeners are bound:
// certmagic must find the challenge ports taken by them.
func (g *Gateway) startTLS(ctx context.Context, ls []*listener) error {
	var ports tlsmgr.ListenPorts
	for _, l := range ls {
		host, port, _ := net.SplitHostPort(l.addr)
		n, _ := strconv.Atoi(port)
		switch l.name {
		case "http":
			ports.HTTP = n
			ports.Host = host
		case "https":
			ports.TLS = n
			ports.Host = host
			g.tls.httpsPort.Store(int64(n))
		}
	}
	if ip := net.ParseIP(ports.Host); ip != nil && ip.IsUnspecified() {
		ports.Host = ""
	}
	return g.tls.mgr.Start(ctx, ports)
}

// staticCertificates are the snapshot's certificates (from Secrets), then
// those of tls.certificates, read now. A file that cannot be read becomes
// a certificate without PEM, which certstore reports, naming the file and
// the read error.
func staticCertificates(cfg *config.Config, snap *model.Snapshot) []*model.Certificate {
	if len(cfg.TLS.Certificates) == 0 {
		return snap.Certificates
	}
	out := append([]*model.Certificate(nil), snap.Certificates...)
	for i, f := range cfg.TLS.Certificates {
		c := &model.Certificate{Source: model.ObjectRef{Kind: "File", Name: fmt.Sprintf("tls.certificates[%d] %s", i, f.Cert)}}
		var err error
		if c.CertPEM, err = os.ReadFile(f.Cert); err == nil {
			c.KeyPEM, err = os.ReadFile(f.Key)
		}
		if err != nil {
			c.Source.Name += " (" + err.Error() + ")"
		}
		out = append(out, c)
	}
	return out
}

// tlsView is what the manager needs from a state.
func tlsView(st *state) tlsmgr.View {
	v := tlsmgr.View{Static: st.certs}
	seen := map[string]bool{}
	add := func(h string) {
		if h != "" && !seen[h] && !st.certs.Covers(h) {
			seen[h] = true
			v.Managed = append(v.Managed, h)
		}
	}
	for _, vh := range st.snap.Hosts {
		if vh.TLS {
			add(vh.Name)
		}
		if vh.Name != "" && (vh.TLSPolicy == nil || vh.TLSPolicy.OnDemand == nil || *vh.TLSPolicy.OnDemand) {
			v.Routed = append(v.Routed, vh.Name)
		}
	}
	for _, h := range st.cfg.TLS.Hosts {
		add(strings.ToLower(h))
	}
	return v
}

// tlsPolicies builds the per-host policies of snap with cfg's defaults.
// A host whose client CA cannot be used refuses every client certificate
// (fail closed) and gets a warning.
func (g *Gateway) tlsPolicies(cfg *config.Config, snap *model.Snapshot) (*tlsmgr.Policies, []model.Warning) {
	var warnings []model.Warning
	t := cfg.TLS
	var defCAs *x509.CertPool
	var defCRLs []*x509.RevocationList
	if t.ClientAuth.CA != "" {
		b := &model.CABundle{}
		var err error
		if b.PEM, err = os.ReadFile(t.ClientAuth.CA); err == nil && t.ClientAuth.CRL != "" {
			b.CRLPEM, err = os.ReadFile(t.ClientAuth.CRL)
		}
		if err == nil {
			defCAs, defCRLs, err = parseCABundle(b)
		}
		if err != nil {
			warnings = append(warnings, model.Warning{Object: model.ObjectRef{Kind: "Config", Name: "tls.client_auth"}, Message: err.Error() + "; no client certificate is accepted"})
			defCAs, defCRLs = x509.NewCertPool(), nil
		}
	}
	hosts := make(map[string]tlsmgr.HostPolicy, len(snap.Hosts))
	for _, vh := range snap.Hosts {
		if vh.Name == "" {
			continue
		}
		hp := tlsmgr.HostPolicy{
			TLS:      vh.TLS,
			Redirect: t.Redirect.Enabled,
			ClientAuth: tlsmgr.ClientAuth{
				Verify: tlsmgr.Verify(t.ClientAuth.Verify),
				CAs:    defCAs,
				CRLs:   defCRLs,
				Depth:  t.ClientAuth.Depth,
			},
		}
		maxAge, sub := t.HSTS.MaxAge, t.HSTS.IncludeSubdomains
		if p := vh.TLSPolicy; p != nil {
			if p.Redirect != nil {
				hp.Redirect = *p.Redirect
			}
			if p.HSTSMaxAge != nil {
				maxAge = *p.HSTSMaxAge
			}
			if p.ClientVerify != "" {
				hp.ClientAuth.Verify = tlsmgr.Verify(p.ClientVerify)
			}
			if p.ClientVerifyDepth != 0 {
				hp.ClientAuth.Depth = p.ClientVerifyDepth
			}
			if p.ClientCA != nil {
				pool, crls, err := parseCABundle(p.ClientCA)
				if err != nil {
					warnings = append(warnings, model.Warning{Object: p.Source, Message: fmt.Sprintf("host %q: client CA %s: %v; no client certificate is accepted", vh.Name, p.ClientCA.Source, err)})
				}
				hp.ClientAuth.CAs, hp.ClientAuth.CRLs = pool, crls
			}
		}
		if hp.ClientAuth.Enabled() && hp.ClientAuth.Verify != tlsmgr.VerifyOptionalNoCA && hp.ClientAuth.CAs == nil {
			hp.ClientAuth.CAs = x509.NewCertPool() // fail closed
		}
		if maxAge > 0 {
			hp.HSTS = "max-age=" + strconv.FormatInt(int64(maxAge/time.Second), 10)
			if sub {
				hp.HSTS += "; includeSubDomains"
			}
		}
		hosts[vh.Name] = hp
	}
	pol, err := tlsmgr.NewPolicies(g.tls.base, hosts)
	if err != nil {
		warnings = append(warnings, model.Warning{Object: model.ObjectRef{Kind: "TLSPolicy"}, Message: err.Error()})
	}
	return pol, warnings
}

// parseCABundle parses a bundle translate has checked. An empty bundle (an
// unusable Secret) gives an empty pool: every client is refused.
func parseCABundle(b *model.CABundle) (*x509.CertPool, []*x509.RevocationList, error) {
	refuse := x509.NewCertPool()
	if len(b.PEM) == 0 {
		return refuse, nil, errors.New("no CA certificates")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b.PEM) {
		return refuse, nil, errors.New("CA bundle has no PEM certificate")
	}
	var crls []*x509.RevocationList
	for rest := b.CRLPEM; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		crl, err := x509.ParseRevocationList(blk.Bytes)
		if err != nil || blk.Type != "X509 CRL" {
			return refuse, nil, fmt.Errorf("CRL %d (PEM %q): not a CRL: %v", len(crls), blk.Type, err)
		}
		crls = append(crls, crl)
	}
	if len(b.CRLPEM) > 0 && len(crls) == 0 {
		return refuse, nil, errors.New("CRL has no PEM X509 CRL")
	}
	return pool, crls, nil
}

func readCAFile(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s: no PEM certificate", path)
	}
	return pool, nil
}

// tlsRestartOnly reports whether keys that only a restart applies changed:
// everything the manager was made with. Per-host defaults (client_auth,
// redirect, hsts) and tls.hosts apply on reload.
func tlsRestartOnly(old, next *config.Config) bool {
	o, n := old.TLS, next.TLS
	o.ClientAuth, n.ClientAuth = config.ClientAuth{}, config.ClientAuth{}
	o.Redirect, n.Redirect = config.Redirect{}, config.Redirect{}
	o.HSTS, n.HSTS = config.HSTS{}, config.HSTS{}
	o.Hosts, n.Hosts = nil, nil
	return !reflect.DeepEqual(o, n)
}

// plainHandler wraps the HTTP listener's handler: ACME HTTP-01 answers,
// then the 308 redirect to HTTPS for hosts with TLS.
func (g *Gateway) plainHandler(next http.Handler) http.Handler {
	redirect := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := g.live.Load()
		if st != nil && !tlsmgr.IsChallengePath(r) {
			host := hostOnly(r.Host)
			port := st.cfg.TLS.Redirect.Port
			if port == 0 {
				port = int(g.tls.httpsPort.Load()) // 0: no HTTPS listener, no redirect
			}
			if hp := st.policies.Lookup(host); hp != nil && hp.TLS && hp.Redirect && port != 0 {
				target := "https://" + host
				if port != 443 {
					target = "https://" + net.JoinHostPort(host, strconv.Itoa(port))
				}
				http.Redirect(w, r, target+r.URL.RequestURI(), http.StatusPermanentRedirect)
				g.observeAnswer(metrics.RouteHTTPSRedirect, r, http.StatusPermanentRedirect) // metrics.go
				return
			}
		}
		next.ServeHTTP(w, r)
	})
	return g.tls.mgr.HTTPChallengeHandler(redirect)
}

// secureHandler wraps the HTTPS listener's handler: on mTLS hosts the Host
// must be the SNI (else a client verified for one host could reach another
// over the same connection): 421. HSTS for the hosts that have it.
func (g *Gateway) secureHandler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := g.live.Load()
		if st == nil || r.TLS == nil {
			next.ServeHTTP(w, r)
			return
		}
		host := hostOnly(r.Host)
		hp := st.policies.Lookup(host)
		if !strings.EqualFold(host, r.TLS.ServerName) {
			sp := st.policies.Lookup(r.TLS.ServerName)
			if (hp != nil && hp.ClientAuth.Enabled()) || (sp != nil && sp.ClientAuth.Enabled()) {
				http.Error(w, "421 misdirected request: the Host header must match the TLS server name on this host", http.StatusMisdirectedRequest)
				g.observeAnswer(metrics.RouteMisdirected, r, http.StatusMisdirectedRequest) // metrics.go
				return
			}
		}
		if hp != nil && hp.HSTS != "" {
			w.Header().Set("Strict-Transport-Security", hp.HSTS)
		}
		next.ServeHTTP(w, r)
	})
}

// hostOnly is the lowercase host of a Host header ("a.test:8443",
// "[::1]:443", "a.test."), without allocating for the common forms.
func hostOnly(hostport string) string {
	h := hostport
	if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.IndexByte(h[i:], ']') < 0 {
		h = h[:i]
	}
	if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
		h = h[1 : len(h)-1]
	}
	return strings.ToLower(strings.TrimSuffix(h, "."))
}

// ExportCARoot writes the local CA's root certificate (PEM) from the
// storage the configuration names, creating the CA if it does not exist
// yet. This is what `sluice ca export` prints.
func ExportCARoot(ctx context.Context, w io.Writer, opts Options) error {
	cfg, err := config.Load(config.Sources{File: opts.ConfigFile, Env: opts.Env, Flags: opts.Flags})
	if err != nil {
		return err
	}
	if cfg.TLS.Issuer != tlsmgr.IssuerLocal {
		return fmt.Errorf("config key tls.issuer is %q: there is no local CA to export", cfg.TLS.Issuer)
	}
	storage, err := clusterStorage(cfg, opts.Env, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	where := fmt.Sprint(storage)
	if storage == nil { // standalone mode, or kube.storage: file
		path := cfg.TLS.Storage
		if path == "" {
			path = tlsmgr.DefaultStoragePath()
		}
		storage, where = &certmagic.FileStorage{Path: path}, "tls.storage "+path
	}
	root, err := tlsmgr.NewLocalCA(storage).RootPEM(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	_, err = w.Write(root)
	return err
}
