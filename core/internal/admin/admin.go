// Package admin is the admin listener's read-only JSON API and dashboard:
//
//	GET /api/routes        the live route table
//	GET /api/certificates  served certificates, with days left
//	GET /api/filters       loaded filters, pool stats, calls by outcome
//	GET /api/warnings      the served build's warnings, last success
//	GET /ui/               the dashboard (static files; the data comes from /api)
//	GET /metrics           Prometheus metrics (when Options.Metrics is set)
//	    /debug/pprof/      Go profiles (when Options.PProf)
//
// Everything but the dashboard's static files requires the bearer token
// when one is configured. The handlers read the gateway through small
// interfaces, so they are tested with plain values.
package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/pprof"
	"sort"
	"strings"
	"time"

	"github.com/sluicegw/sluice/core/internal/model"
)

// RouteLister returns the live route table. Called per request, from any
// goroutine: it must be safe for concurrent use and must not block.
type RouteLister interface {
	Routes() RouteTable
}

// CertificateLister returns the served certificates. Same contract as
// RouteLister.
type CertificateLister interface {
	Certificates() []Certificate
}

// FilterLister returns the loaded filters. Same contract as RouteLister.
type FilterLister interface {
	Filters() []Filter
}

// WarningLister returns the served build's warnings. Same contract as
// RouteLister.
type WarningLister interface {
	Warnings() Warnings
}

// RouteTable is /api/routes.
type RouteTable struct {
	Routes         []Route  `json:"routes"`
	DefaultBackend *Backend `json:"defaultBackend,omitempty"`
}

// Route is one path rule of one host.
type Route struct {
	Host        string   `json:"host"` // "*" for the host-less rules
	Path        string   `json:"path"`
	PathType    string   `json:"pathType"`
	Source      string   `json:"source"` // "Ingress default/web"
	TLS         bool     `json:"tls"`
	Backend     Backend  `json:"backend"`
	Filters     []string `json:"filters"` // the chain, in order
	FilterError string   `json:"filterError,omitempty"`
}

// Backend is a Service port and its endpoints.
type Backend struct {
	Name      string     `json:"name"` // namespace/service:port
	Protocol  string     `json:"protocol"`
	Balancer  string     `json:"balancer"`
	Endpoints []Endpoint `json:"endpoints"`
}

// Endpoint is one upstream address with its live counters.
type Endpoint struct {
	Address  string `json:"address"`
	InFlight int64  `json:"inFlight"`
	Requests uint64 `json:"requests"`
	Failures uint64 `json:"failures"`
	Ejected  bool   `json:"ejected"`
}

// Certificate is /api/certificates' entry.
type Certificate struct {
	Names    []string  `json:"names"`
	Issuer   string    `json:"issuer"`
	NotAfter time.Time `json:"notAfter"`
	DaysLeft int       `json:"daysLeft"` // filled by the handler
	Kind     string    `json:"kind"`     // static | managed | on_demand
	Source   string    `json:"source"`   // "Secret default/web-tls", a file, or the storage
}

// Filter is /api/filters' entry.
type Filter struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"` // wasm | plugin
	Module string `json:"module,omitempty"`
	Digest string `json:"digest,omitempty"`
	Pool   *Pool  `json:"pool,omitempty"`
	// Calls is every call; Outcomes splits the failures (trap, timeout,
	// memory_limit, busy) and how the policy answered them (failed_open,
	// failed_closed). ErrorRate is failures / calls.
	Calls     uint64            `json:"calls"`
	Failures  uint64            `json:"failures"`
	Outcomes  map[string]uint64 `json:"outcomes"`
	ErrorRate float64           `json:"errorRate"`
}

// Pool is a wasm filter's instance pool.
type Pool struct {
	Size           int    `json:"size"`
	InUse          int    `json:"inUse"`
	Idle           int    `json:"idle"`
	Waiting        int    `json:"waiting"`
	Instantiations uint64 `json:"instantiations"`
	CreateErrors   uint64 `json:"createErrors"`
}

// Warnings is /api/warnings.
type Warnings struct {
	// Built is when the served state was built; LastSuccess the last
	// build that was served (the same unless the last one failed).
	Built       time.Time       `json:"built"`
	LastSuccess time.Time       `json:"lastSuccess"`
	LastError   string          `json:"lastError,omitempty"`
	Warnings    []model.Warning `json:"warnings"`
}

// Options configure Handler. Nil listers answer an empty list.
type Options struct {
	// Token, when set, is required as "Authorization: Bearer TOKEN" on
	// everything but the dashboard's static files.
	Token    string
	PProf    bool
	Metrics  http.Handler
	Routes   RouteLister
	Certs    CertificateLister
	Filters  FilterLister
	Warnings WarningLister
	// Now is the clock of DaysLeft; nil means time.Now.
	Now func() time.Time
}

//go:embed ui
var uiFiles embed.FS

// Handler returns the admin API, dashboard, metrics and pprof handler. It
// is a mux of its own; mount it at "/" beside the health endpoints.
func Handler(opts Options) http.Handler {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	mux := http.NewServeMux()
	auth := authorize(opts.Token)
	mux.Handle("GET /api/routes", auth(jsonHandler(func() any {
		if opts.Routes == nil {
			return RouteTable{Routes: []Route{}}
		}
		t := opts.Routes.Routes()
		if t.Routes == nil {
			t.Routes = []Route{}
		}
		return t
	})))
	mux.Handle("GET /api/certificates", auth(jsonHandler(func() any {
		out := []Certificate{}
		if opts.Certs != nil {
			out = append(out, opts.Certs.Certificates()...)
		}
		now := opts.Now()
		for i := range out {
			out[i].DaysLeft = daysLeft(now, out[i].NotAfter)
		}
		sort.SliceStable(out, func(i, j int) bool { return out[i].NotAfter.Before(out[j].NotAfter) })
		return out
	})))
	mux.Handle("GET /api/filters", auth(jsonHandler(func() any {
		out := []Filter{}
		if opts.Filters != nil {
			out = append(out, opts.Filters.Filters()...)
		}
		for i := range out {
			if out[i].Calls > 0 {
				out[i].ErrorRate = float64(out[i].Failures) / float64(out[i].Calls)
			}
		}
		sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
		return out
	})))
	mux.Handle("GET /api/warnings", auth(jsonHandler(func() any {
		if opts.Warnings == nil {
			return Warnings{Warnings: []model.Warning{}}
		}
		w := opts.Warnings.Warnings()
		if w.Warnings == nil {
			w.Warnings = []model.Warning{}
		}
		return w
	})))
	if opts.Metrics != nil {
		mux.Handle("GET /metrics", auth(opts.Metrics))
	}
	if opts.PProf {
		mux.Handle("/debug/pprof/", auth(http.HandlerFunc(pprof.Index)))
		mux.Handle("/debug/pprof/cmdline", auth(http.HandlerFunc(pprof.Cmdline)))
		mux.Handle("/debug/pprof/profile", auth(http.HandlerFunc(pprof.Profile)))
		mux.Handle("/debug/pprof/symbol", auth(http.HandlerFunc(pprof.Symbol)))
		mux.Handle("/debug/pprof/trace", auth(http.HandlerFunc(pprof.Trace)))
	}
	ui, _ := fs.Sub(uiFiles, "ui") // cannot fail: the folder is embedded
	mux.Handle("GET /ui/", noStore(http.StripPrefix("/ui/", http.FileServerFS(ui))))
	mux.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusFound))
	return mux
}

// daysLeft is the whole days until notAfter, negative once expired.
func daysLeft(now, notAfter time.Time) int {
	d := notAfter.Sub(now)
	days := int(d / (24 * time.Hour))
	if d < 0 && d%(24*time.Hour) != 0 {
		days--
	}
	return days
}

func jsonHandler(get func() any) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := json.MarshalIndent(get(), "", "  ")
		if err != nil {
			http.Error(w, "encode: "+err.Error(), http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		w.Write(append(b, '\n'))
	})
}

// Authorize wraps a handler served beside the admin API (on the same
// listener) so that it needs the same bearer token; with no token it
// returns the handler unchanged.
func Authorize(token string, h http.Handler) http.Handler { return authorize(token)(h) }

// authorize requires the bearer token when token is set. The comparison
// is of SHA-256 digests in constant time, so neither the token's content
// nor its length leaks through timing.
func authorize(token string) func(http.Handler) http.Handler {
	if token == "" {
		return func(h http.Handler) http.Handler { return h }
	}
	want := sha256.Sum256([]byte(token))
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			sum := sha256.Sum256([]byte(got))
			if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="sluice admin"`)
				http.Error(w, "unauthorized: send Authorization: Bearer <admin.token>", http.StatusUnauthorized)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
}

func noStore(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
		w.Header().Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}
