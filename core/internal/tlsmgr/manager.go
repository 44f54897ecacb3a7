// Package tlsmgr chooses the server certificate of every TLS handshake:
// static certificates first, then certificates certmagic manages (obtained
// ahead of time for the hosts that ask for TLS, or on demand during the
// handshake), issued by the local CA or by an ACME CA. It also answers the
// ACME challenges (HTTP-01 and TLS-ALPN-01) and decides per host which
// client certificates a handshake asks for (mTLS, see Policies).
//
// # Notes
//
//   - A Manager owns its own certmagic Cache and Configs, never the package
//     globals, so two gateways in one process (tests) do not share state.
//   - The data the handshake reads (static certificates, managed and routed
//     names) is an immutable View swapped atomically by Update.
//   - See RATIONALE.md for the choices made here.
package tlsmgr

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"

	"github.com/sluicegw/sluice/core/internal/certstore"
)

// Issuers.
const (
	IssuerLocal = "local"
	IssuerACME  = "acme"
)

// ACMEProtocol is the ALPN protocol of TLS-ALPN-01 validation (RFC 8737).
const ACMEProtocol = "acme-tls/1"

// Options configure a Manager. The zero value issues from the local CA,
// stores in the default folder and has on-demand issuance off.
type Options struct {
	// Issuer is IssuerLocal (default) or IssuerACME.
	Issuer string
	// StoragePath is the folder of the certmagic file storage; empty means
	// DefaultStoragePath(). Storage, when set, is used instead.
	StoragePath string
	Storage     certmagic.Storage
	// DefaultServerName picks the certificate for a handshake without SNI
	// when no static certificate is the default.
	DefaultServerName string
	ACME              ACMEOptions
	OnDemand          OnDemandOptions
	// Logger receives the certificate events (obtained, renewed, failed)
	// at info/warn and certmagic's own log at debug; nil discards.
	Logger *slog.Logger
}

// ACMEOptions configure the ACME issuer.
type ACMEOptions struct {
	CA    string // directory URL
	Email string
	// TrustedRoots are the roots for the CA's own API; nil means the system's.
	TrustedRoots *x509.CertPool
	// EABKeyID and EABMACKey are the external account binding, if any.
	EABKeyID, EABMACKey string
	PreferredChains     certmagic.ChainPreference
	DisableHTTP01       bool
	DisableTLSALPN01    bool
}

// OnDemandOptions configure issuance during handshakes.
type OnDemandOptions struct {
	Enabled bool
	// Ask is an optional URL: GET Ask?domain=NAME answering 200 allows a
	// name the route table does not serve.
	Ask string
	// Burst and Interval bound the issuance rate: at most Burst at once,
	// refilled at Burst per Interval. Zero means 10 per minute.
	Burst    int
	Interval time.Duration
}

// View is what one snapshot tells the manager. It is immutable once passed
// to Update.
type View struct {
	// Static certificates win over managed ones for their names.
	Static *certstore.Store
	// Managed are the names to keep certificates for, obtained ahead of
	// time (spec.tls hosts without a static certificate, tls.hosts).
	Managed []string
	// Routed are the names the route table serves ("a.example.com" or
	// "*.example.com") that may get a certificate on demand.
	Routed []string
}

// view is View indexed for handshakes.
type view struct {
	static  *certstore.Store
	managed map[string]bool
	routed  hostSet
	gen     uint64
}

// Stats count certificate events since the Manager started.
type Stats struct {
	Obtaining       int64 `json:"obtaining"`
	Obtained        int64 `json:"obtained"`
	Renewed         int64 `json:"renewed"`
	Failed          int64 `json:"failed"`
	OnDemandAllowed int64 `json:"onDemandAllowed"`
	OnDemandDenied  int64 `json:"onDemandDenied"`
	RateLimited     int64 `json:"rateLimited"`
}

// ErrNoCertificate is the handshake error for a name without certificate.
var ErrNoCertificate = certstore.ErrNoCertificate

// Manager selects certificates and manages the ones it issues. Create it
// with New, then Update with the first View, Start once the listeners are
// bound, Update for every new snapshot, Close at the end.
//
// GetCertificate, HTTPChallengeHandler and Stats are safe for concurrent
// use at any time, also before Start (static certificates only) and after
// Close; GetCertificate blocks only for an on-demand issuance (bounded by
// certmagic at 180 s) or an ask URL (5 s). Update and Start are called
// from one goroutine at a time (the gateway's control loop); Close from
// any.
type Manager struct {
	opts    Options
	log     *slog.Logger
	storage certmagic.Storage
	local   *LocalCA // nil for ACME

	cur atomic.Pointer[view]

	// Set by Start; read by handshakes.
	started  atomic.Bool
	cache    *certmagic.Cache
	managed  *certmagic.Config // no on-demand: names are obtained ahead of time
	ondemand *certmagic.Config // nil unless on-demand is enabled
	acme     *certmagic.ACMEIssuer
	ctx      context.Context
	cancel   context.CancelFunc

	decisions decisionCache
	limiter   *bucket
	ask       *http.Client
	askURL    *url.URL // nil without an ask URL

	obtaining, obtained, renewed, failed atomic.Int64
	odAllowed, odDenied, rateLimited     atomic.Int64

	renewCheck time.Duration // certmagic's renewal check interval; 0: its default (tests shorten it)

	mu      sync.Mutex // guards manages, closed, and Start
	manages map[string]bool
	closed  bool
}

// DefaultStoragePath is $XDG_DATA_HOME/sluice, else ~/.local/share/sluice,
// else ./sluice-data.
func DefaultStoragePath() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "sluice")
	}
	if h, err := os.UserHomeDir(); err == nil && h != "" {
		return filepath.Join(h, ".local", "share", "sluice")
	}
	return "sluice-data"
}

// New checks opts and returns a Manager. It starts nothing and touches no
// storage.
func New(opts Options) (*Manager, error) {
	switch opts.Issuer {
	case "":
		opts.Issuer = IssuerLocal
	case IssuerLocal:
	case IssuerACME:
		if opts.ACME.CA == "" {
			return nil, errors.New("tls: acme issuer without a directory URL")
		}
		if opts.ACME.DisableHTTP01 && opts.ACME.DisableTLSALPN01 {
			return nil, errors.New("tls: acme issuer with both challenge types disabled")
		}
	default:
		return nil, fmt.Errorf("tls: unknown issuer %q", opts.Issuer)
	}
	var askURL *url.URL
	if opts.OnDemand.Ask != "" {
		u, err := url.Parse(opts.OnDemand.Ask)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("tls: on-demand ask URL %q is not an http(s) URL", opts.OnDemand.Ask)
		}
		askURL = u
	}
	if opts.OnDemand.Burst <= 0 {
		opts.OnDemand.Burst = 10
	}
	if opts.OnDemand.Interval <= 0 {
		opts.OnDemand.Interval = time.Minute
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	storage := opts.Storage
	if storage == nil {
		path := opts.StoragePath
		if path == "" {
			path = DefaultStoragePath()
		}
		storage = &certmagic.FileStorage{Path: path}
	}
	m := &Manager{
		opts:    opts,
		log:     log,
		storage: storage,
		limiter: newBucket(opts.OnDemand.Burst, opts.OnDemand.Interval, time.Now),
		ask:     &http.Client{Timeout: 5 * time.Second},
		askURL:  askURL,
		manages: map[string]bool{},
	}
	if opts.Issuer == IssuerLocal {
		m.local = NewLocalCA(storage)
	}
	m.cur.Store(&view{static: nil, managed: map[string]bool{}})
	return m, nil
}

// LocalCA returns the local CA, or nil when the issuer is ACME.
func (m *Manager) LocalCA() *LocalCA { return m.local }

// Update makes v the current view: handshakes see it at once; names newly
// in v.Managed start being managed (in the background) if the Manager has
// started.
func (m *Manager) Update(v View) {
	old := m.cur.Load()
	nv := &view{static: v.Static, managed: make(map[string]bool, len(v.Managed)), routed: newHostSet(v.Routed), gen: old.gen + 1}
	for _, n := range v.Managed {
		nv.managed[normalize(n)] = true
	}
	m.cur.Store(nv)
	m.decisions.reset()
	if m.started.Load() {
		m.manage(nv)
	}
}

// ListenPorts are the gateway's bound HTTP and HTTPS ports, where the ACME
// CA validates challenges. Zero means the listener is off.
type ListenPorts struct {
	Host      string // the listeners' bind host ("" = all interfaces)
	HTTP, TLS int
}

// Start creates the certmagic cache and configs, loads or creates the local
// CA, and starts managing the current view's names. ctx bounds the
// background work; Close stops it.
func (m *Manager) Start(ctx context.Context, ports ListenPorts) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("tls: manager is closed")
	}
	if m.started.Load() {
		return errors.New("tls: manager already started")
	}
	if m.local != nil {
		if _, err := m.local.Root(ctx); err != nil {
			return fmt.Errorf("tls: %w", err)
		}
	}
	m.ctx, m.cancel = context.WithCancel(ctx)
	zl := newZapLogger(m.log)
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return m.managed, nil },
		RenewCheckInterval: m.renewCheck,
		Logger:             zl,
	})
	m.managed = m.newConfig(nil, ports)
	if m.opts.OnDemand.Enabled {
		m.ondemand = m.newConfig(&certmagic.OnDemandConfig{DecisionFunc: m.decide}, ports)
	}
	m.started.Store(true)
	m.manageLocked(m.cur.Load())
	return nil
}

func (m *Manager) newConfig(od *certmagic.OnDemandConfig, ports ListenPorts) *certmagic.Config {
	cfg := certmagic.New(m.cache, certmagic.Config{
		Storage:  m.storage,
		OnDemand: od,
		OnEvent:  m.onEvent,
		// Only the events onEvent uses: certmagic otherwise builds a
		// tls_get_certificate event for every handshake.
		ShouldEmitFunc: func(event string) bool {
			return event == "cert_obtaining" || event == "cert_obtained" || event == "cert_failed"
		},
		DefaultServerName: m.opts.DefaultServerName,
		Logger:            newZapLogger(m.log),
		// Local CA certificates carry no OCSP responder; ACME CAs are
		// moving off OCSP. Stapling stays on where a responder exists.
	})
	if m.local != nil {
		cfg.Issuers = []certmagic.Issuer{m.local}
		cfg.DisableARI = true
		return cfg
	}
	a := m.opts.ACME
	tmpl := certmagic.ACMEIssuer{
		CA:                      a.CA,
		Email:                   a.Email,
		Agreed:                  true,
		TrustedRoots:            a.TrustedRoots,
		PreferredChains:         a.PreferredChains,
		DisableHTTPChallenge:    a.DisableHTTP01,
		DisableTLSALPNChallenge: a.DisableTLSALPN01,
		// The gateway's own listeners hold these ports, so certmagic's
		// solvers find them taken and leave the answers to us (the HTTP
		// handler and GetCertificate), reading them from memory/storage.
		ListenHost:     ports.Host,
		AltHTTPPort:    ports.HTTP,
		AltTLSALPNPort: ports.TLS,
		Logger:         newZapLogger(m.log),
	}
	if a.EABKeyID != "" {
		tmpl.ExternalAccount = &acme.EAB{KeyID: a.EABKeyID, MACKey: a.EABMACKey}
	}
	iss := certmagic.NewACMEIssuer(cfg, tmpl)
	cfg.Issuers = []certmagic.Issuer{iss}
	if m.acme == nil {
		m.acme = iss
	}
	return cfg
}

// manage starts managing the names of v not managed yet, and stops
// maintaining those v no longer lists (their certificates stay in storage
// and are reused if the name comes back). Wildcard names need the DNS-01
// challenge with ACME, which Sluice does not do: they are logged and
// skipped (on-demand covers their subdomains).
func (m *Manager) manage(v *view) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.manageLocked(v)
}

func (m *Manager) manageLocked(v *view) {
	if m.closed {
		return
	}
	var gone []certmagic.SubjectIssuer
	for n := range m.manages {
		if !v.managed[n] {
			delete(m.manages, n)
			gone = append(gone, certmagic.SubjectIssuer{Subject: n})
		}
	}
	if len(gone) > 0 {
		m.cache.RemoveManaged(gone)
		m.log.Info("tls: no longer managing certificates", "hosts", len(gone))
	}
	var names []string
	for n := range v.managed {
		if m.manages[n] {
			continue
		}
		if m.local == nil && len(n) > 2 && n[:2] == "*." {
			m.log.Warn("tls: wildcard host needs the DNS-01 challenge, which is not configured; no certificate managed", "host", n)
			m.manages[n] = true
			continue
		}
		m.manages[n] = true
		names = append(names, n)
	}
	if len(names) == 0 {
		return
	}
	slices.Sort(names)
	m.log.Info("tls: managing certificates", "hosts", names, "issuer", m.opts.Issuer)
	if err := m.managed.ManageAsync(m.ctx, names); err != nil {
		m.log.Error("tls: manage certificates", "hosts", names, "error", err)
	}
}

// GetCertificate is the tls.Config.GetCertificate of the HTTPS listener:
// TLS-ALPN-01 challenges, then static certificates, then managed ones
// (obtained on demand when enabled and allowed). A handshake without SNI
// gets the static default certificate, else the one of DefaultServerName.
// hello must come from a real handshake: certmagic reads hello.Conn.
func (m *Manager) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	started := m.started.Load()
	if started && isACMEChallenge(hello) {
		return m.managed.GetCertificate(hello)
	}
	v := m.cur.Load()
	if hello.ServerName != "" && isIP(hello.ServerName) {
		// RFC 6066 forbids an IP address as server name, but OpenSSL
		// clients (wrk, curl --resolve-less scripts) send one for an
		// https://IP URL: answer as for a handshake without SNI, as nginx
		// and HAProxy do. A per-host mTLS policy still applies by Host
		// (a Host that differs from this name is refused with 421).
		h := *hello
		h.ServerName = ""
		hello = &h
	}
	if hello.ServerName == "" {
		if c, err := v.static.GetCertificate(hello); err == nil {
			return c, nil
		}
		if m.opts.DefaultServerName == "" {
			return nil, fmt.Errorf("%w: handshake without server name and no default certificate (tls.default_server_name)", ErrNoCertificate)
		}
		h := *hello
		h.ServerName = m.opts.DefaultServerName
		hello = &h
	}
	if c := v.static.Lookup(hello.ServerName); c != nil {
		return c, nil
	}
	if !started {
		return nil, fmt.Errorf("%w for server name %q", ErrNoCertificate, hello.ServerName)
	}
	if m.ondemand != nil {
		return m.ondemand.GetCertificate(hello)
	}
	return m.managed.GetCertificate(hello)
}

func isIP(name string) bool {
	_, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(name, "["), "]"))
	return err == nil
}

func isACMEChallenge(hello *tls.ClientHelloInfo) bool {
	return len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == ACMEProtocol
}

// HTTPChallengeHandler answers ACME HTTP-01 challenges and passes every
// other request to next.
func (m *Manager) HTTPChallengeHandler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m.started.Load() && m.acme != nil && m.acme.HandleHTTPChallenge(w, r) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

// IsChallengePath reports whether r is an ACME HTTP-01 challenge request
// (never redirected to HTTPS).
func IsChallengePath(r *http.Request) bool { return certmagic.LooksLikeHTTPChallenge(r) }

// CachedLeaf returns the leaf of a certificate for exactly name that the
// manager holds in memory, or nil when none is loaded (nothing asked for
// it yet, or another replica obtained it). It reads no storage and is safe
// for concurrent use.
func (m *Manager) CachedLeaf(name string) *x509.Certificate {
	if !m.started.Load() {
		return nil
	}
	for _, c := range m.cache.AllMatchingCertificates(name) {
		if c.Leaf != nil && slices.Contains(c.Names, name) {
			return c.Leaf
		}
	}
	return nil
}

// Storage is where the manager keeps certificates, keys and locks: the
// file storage of Options.StoragePath or Options.Storage. Safe for
// concurrent use, as every certmagic.Storage.
func (m *Manager) Storage() certmagic.Storage { return m.storage }

// Stats returns the event counters.
func (m *Manager) Stats() Stats {
	return Stats{
		Obtaining:       m.obtaining.Load(),
		Obtained:        m.obtained.Load(),
		Renewed:         m.renewed.Load(),
		Failed:          m.failed.Load(),
		OnDemandAllowed: m.odAllowed.Load(),
		OnDemandDenied:  m.odDenied.Load(),
		RateLimited:     m.rateLimited.Load(),
	}
}

// onEvent logs and counts certmagic's certificate events.
func (m *Manager) onEvent(_ context.Context, event string, data map[string]any) error {
	id, _ := data["identifier"].(string)
	switch event {
	case "cert_obtaining":
		m.obtaining.Add(1)
		m.log.Debug("tls: obtaining certificate", "host", id)
	case "cert_obtained":
		if renewal, _ := data["renewal"].(bool); renewal {
			m.renewed.Add(1)
			m.log.Info("tls: certificate renewed", "host", id, "issuer", data["issuer"])
		} else {
			m.obtained.Add(1)
			m.log.Info("tls: certificate obtained", "host", id, "issuer", data["issuer"])
		}
	case "cert_failed":
		m.failed.Add(1)
		m.log.Warn("tls: certificate failed", "host", id, "renewal", data["renewal"], "error", data["error"])
	}
	return nil
}

// Close stops certificate maintenance and background issuance. It copes
// with a Manager that was never started, and may be called more than once.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	if m.cancel != nil {
		m.cancel()
	}
	if m.cache != nil {
		m.cache.Stop()
	}
	return nil
}
