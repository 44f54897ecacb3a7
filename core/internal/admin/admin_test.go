package admin

import (
	"bytes"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicegw/sluice/core/internal/model"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var now = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// fake is every lister, from plain values.
type fake struct {
	routes   RouteTable
	certs    []Certificate
	filters  []Filter
	warnings Warnings
}

func (f *fake) Routes() RouteTable          { return f.routes }
func (f *fake) Certificates() []Certificate { return f.certs }
func (f *fake) Filters() []Filter           { return f.filters }
func (f *fake) Warnings() Warnings          { return f.warnings }

var (
	_ RouteLister       = (*fake)(nil)
	_ CertificateLister = (*fake)(nil)
	_ FilterLister      = (*fake)(nil)
	_ WarningLister     = (*fake)(nil)
)

func sample() *fake {
	be := Backend{Name: "default/web:80", Protocol: "http", Balancer: "round_robin", Endpoints: []Endpoint{
		{Address: "10.0.0.1:8080", Requests: 12, InFlight: 1},
		{Address: "10.0.0.2:8080", Requests: 3, Failures: 3, Ejected: true},
	}}
	return &fake{
		routes: RouteTable{Routes: []Route{
			{Host: "shop.example", Path: "/cart", PathType: "Exact", Source: "Ingress default/shop", TLS: true, Backend: be, Filters: []string{"auth", "ratelimit"}},
			{Host: "*", Path: "/", PathType: "Prefix", Source: "Ingress default/catchall", Backend: be, Filters: []string{}, FilterError: `metadata.annotations["sluice.io/filters"][0]: no module`},
		}, DefaultBackend: &Backend{Name: "default/fallback:80", Protocol: "h2c", Balancer: "least_request", Endpoints: []Endpoint{}}},
		certs: []Certificate{
			{Names: []string{"shop.example"}, Issuer: "Sluice Local Intermediate CA", NotAfter: now.Add(90 * 24 * time.Hour), Kind: "managed", Source: "storage certificates/sluice-local/shop.example/shop.example.crt"},
			{Names: []string{"old.example", "www.old.example"}, Issuer: "Example CA", NotAfter: now.Add(-36 * time.Hour), Kind: "static", Source: "Secret default/old-tls"},
			{Names: []string{"soon.example"}, Issuer: "Example CA", NotAfter: now.Add(13*24*time.Hour + time.Hour), Kind: "on_demand", Source: "storage certificates/acme/soon.example/soon.example.crt"},
		},
		filters: []Filter{
			{Name: "trap", Kind: "wasm", Module: "file:///filters/trap.wasm", Digest: "4a8573cb6372aa", Pool: &Pool{Size: 1, Idle: 1, Instantiations: 5}, Calls: 5, Failures: 4,
				Outcomes: map[string]uint64{"trap": 4, "timeout": 0, "failed_closed": 4}},
			{Name: "authz", Kind: "plugin", Calls: 0, Outcomes: map[string]uint64{"restarts": 1}},
		},
		warnings: Warnings{Built: now, LastSuccess: now.Add(-time.Minute), LastError: "compile routes: boom", Warnings: []model.Warning{
			{Object: model.ObjectRef{Kind: "Ingress", Namespace: "default", Name: "shop"}, Message: `spec.rules[0].http.paths[1].path: "cart" must start with "/"`},
		}},
	}
}

func get(t *testing.T, h http.Handler, path, token string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	file := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestAPIGolden(t *testing.T) {
	f := sample()
	h := Handler(Options{Routes: f, Certs: f, Filters: f, Warnings: f, Now: func() time.Time { return now }})
	empty := Handler(Options{Now: func() time.Time { return now }})
	for _, tc := range []struct {
		path, file string
		h          http.Handler
	}{
		{"/api/routes", "routes.json", h},
		{"/api/certificates", "certificates.json", h},
		{"/api/filters", "filters.json", h},
		{"/api/warnings", "warnings.json", h},
		{"/api/routes", "empty_routes.json", empty},
		{"/api/certificates", "empty_certificates.json", empty},
		{"/api/filters", "empty_filters.json", empty},
		{"/api/warnings", "empty_warnings.json", empty},
	} {
		t.Run(tc.file, func(t *testing.T) {
			rec := get(t, tc.h, tc.path, "")
			if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("status %d, type %q", rec.Code, rec.Header().Get("Content-Type"))
			}
			golden(t, tc.file, rec.Body.Bytes())
		})
	}
}

func TestDaysLeft(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{
		{90 * 24 * time.Hour, 90},
		{24*time.Hour - time.Second, 0},
		{0, 0},
		{-time.Second, -1},
		{-24 * time.Hour, -1},
		{-36 * time.Hour, -2},
	} {
		if got := daysLeft(now, now.Add(tc.d)); got != tc.want {
			t.Errorf("daysLeft(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
}

func TestToken(t *testing.T) {
	const token = "s3cret-token-0123456789"
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "sluice_up 1\n") })
	f := sample()
	h := Handler(Options{Token: token, PProf: true, Metrics: metrics, Routes: f, Certs: f, Filters: f, Warnings: f})
	for _, path := range []string{"/api/routes", "/api/certificates", "/api/filters", "/api/warnings", "/metrics", "/debug/pprof/"} {
		for _, tc := range []struct {
			token string
			want  int
		}{
			{"", http.StatusUnauthorized},
			{"wrong", http.StatusUnauthorized},
			{token + "x", http.StatusUnauthorized},
			{token[:len(token)-1], http.StatusUnauthorized},
			{token, http.StatusOK},
		} {
			rec := get(t, h, path, tc.token)
			if rec.Code != tc.want {
				t.Errorf("GET %s with token %q: status %d, want %d", path, tc.token, rec.Code, tc.want)
			}
			if rec.Code == http.StatusUnauthorized && rec.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("GET %s: 401 without WWW-Authenticate", path)
			}
		}
	}
	// A token in another scheme is refused.
	req := httptest.NewRequest("GET", "/api/routes", nil)
	req.Header.Set("Authorization", "Basic "+token)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("Basic scheme: status %d, want 401", rec.Code)
	}
	// The dashboard's files hold no data: served without the token.
	for _, path := range []string{"/ui/", "/ui/app.js", "/ui/app.css"} {
		if rec := get(t, h, path, ""); rec.Code != 200 || rec.Body.Len() == 0 {
			t.Errorf("GET %s without token: status %d, %d bytes", path, rec.Code, rec.Body.Len())
		}
	}
}

func TestPProfOptIn(t *testing.T) {
	off := Handler(Options{})
	if rec := get(t, off, "/debug/pprof/", ""); rec.Code != http.StatusNotFound {
		t.Errorf("pprof off: status %d, want 404", rec.Code)
	}
	if rec := get(t, off, "/metrics", ""); rec.Code != http.StatusNotFound {
		t.Errorf("no metrics handler: status %d, want 404", rec.Code)
	}
	on := Handler(Options{PProf: true})
	rec := get(t, on, "/debug/pprof/", "")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "goroutine") {
		t.Errorf("pprof on: status %d, body lacks the profiles", rec.Code)
	}
}

func TestDashboardFiles(t *testing.T) {
	h := Handler(Options{})
	rec := get(t, h, "/", "")
	if rec.Code != http.StatusFound || rec.Header().Get("Location") != "/ui/" {
		t.Errorf("GET /: %d to %q, want 302 to /ui/", rec.Code, rec.Header().Get("Location"))
	}
	rec = get(t, h, "/ui/", "")
	body := rec.Body.String()
	for _, want := range []string{`<script src="app.js"`, `id="routes-table"`, `id="certificates-table"`, `id="filters-table"`, `id="warnings-list"`} {
		if !strings.Contains(body, want) {
			t.Errorf("index.html lacks %s", want)
		}
	}
	for _, bad := range []string{"http://", "https://", "//cdn"} {
		if strings.Contains(body, bad) {
			t.Errorf("index.html loads %q from elsewhere: everything must come from the binary", bad)
		}
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	js := get(t, h, "/ui/app.js", "").Body.String()
	if strings.Contains(js, "innerHTML") {
		t.Error("app.js uses innerHTML: data from the API must be set as text")
	}
	if strings.Contains(js, "console.log") {
		t.Error("app.js logs to the console (the token must never be logged)")
	}
}

// Variants of the protected paths (trailing or doubled slashes, dot
// segments, other methods, a query) never answer data without the token:
// they are refused, redirected to the canonical path, or not found.
func TestTokenPathVariants(t *testing.T) {
	const token = "s3cret-token-0123456789"
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "sluice_up 1\n") })
	f := sample()
	h := Handler(Options{Token: token, PProf: true, Metrics: metrics, Routes: f, Certs: f, Filters: f, Warnings: f})
	for _, method := range []string{"GET", "HEAD", "POST", "OPTIONS"} {
		for _, path := range []string{
			"/api/routes", "/api/routes/", "//api/routes", "/api//routes", "/api/./routes", "/ui/../api/routes",
			"/api/routes?x=1", "/API/routes", "/metrics", "/metrics/", "//metrics", "/debug/pprof", "/debug/pprof/heap",
			"/debug/pprof/cmdline", "//debug/pprof/", "/debug/pprof/../pprof/goroutine",
		} {
			req := httptest.NewRequest(method, path, nil)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			switch rec.Code {
			case http.StatusUnauthorized, http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusMovedPermanently, http.StatusTemporaryRedirect:
			default:
				t.Errorf("%s %s without token: status %d, want 401, 404, 405 or a redirect", method, path, rec.Code)
			}
			redirect := rec.Code/100 == 3 // its body names the target path
			if b := rec.Body.String(); !redirect && (strings.Contains(b, "sluice_up") || strings.Contains(b, `"routes"`) || strings.Contains(b, "goroutine")) {
				t.Errorf("%s %s without token: body has data: %.80q", method, path, b)
			}
		}
	}
}

// TestAuthorize: a handler served beside the API needs the same token.
func TestAuthorize(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "counters\n") })
	h := Authorize("s3cret-token-0123456789", ok)
	if rec := get(t, h, "/stats/tls", ""); rec.Code != http.StatusUnauthorized {
		t.Errorf("without the token: status %d, want 401", rec.Code)
	}
	if rec := get(t, h, "/stats/tls", "s3cret-token-0123456789"); rec.Code != http.StatusOK {
		t.Errorf("with the token: status %d, want 200", rec.Code)
	}
	if rec := get(t, Authorize("", ok), "/stats/tls", ""); rec.Code != http.StatusOK {
		t.Errorf("no token configured: status %d, want 200", rec.Code)
	}
}
