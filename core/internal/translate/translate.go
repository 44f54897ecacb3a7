// Package translate turns Kubernetes objects into a model.Snapshot.
//
// Translate is a pure function: the same Input and Options always give the
// same Snapshot and warnings, the Input is never modified, and no input, however
// malformed, makes it panic. The manifest folder (standalone mode) and the
// client-go informers (cluster mode) both fill the same Input, so the two
// modes share one translation.
//
// # Notes
//
//   - Semantics follow the networking.k8s.io/v1 Ingress API; see
//     https://kubernetes.io/docs/concepts/services-networking/ingress/ and
//     DESIGN.md "Route matching". Choices the API leaves open are explained
//     in RATIONALE.md.
//   - Invalid parts of an object become warnings naming the object and the
//     field; every valid part, and every other object, is still served.
package translate

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/sluicegw/sluice/core/internal/model"
)

// ControllerName is the spec.controller of the IngressClasses that
// Sluice owns when Options.ControllerName is empty.
const ControllerName = "sluice.io/ingress-controller"

// DefaultClassName is the class name Sluice owns without an IngressClass
// object when Options.ClassNames is nil.
const DefaultClassName = "sluice"

// Input is the set of Kubernetes objects a translation reads. Objects may come
// in any order; nil entries are ignored. Translate only reads them.
type Input struct {
	Ingresses      []*networkingv1.Ingress
	IngressClasses []*networkingv1.IngressClass
	Services       []*corev1.Service
	EndpointSlices []*discoveryv1.EndpointSlice
	Secrets        []*corev1.Secret
}

// Options configure a translation. The zero value is usable: it owns the
// classes of ControllerName and DefaultClassName, balances round
// robin, sets no timeouts, rejects loopback endpoints and checks certificate
// expiry against the wall clock.
type Options struct {
	// ControllerName is the spec.controller value of the IngressClasses
	// Sluice owns. Empty means the constant ControllerName.
	ControllerName string
	// ClassNames are class names Sluice owns when no IngressClass object of
	// that name exists (an IngressClass object always decides for its own
	// name). Nil means DefaultClassName; a non-nil empty slice means none.
	ClassNames []string
	// Balancer is the policy of every Backend. Empty means round robin.
	Balancer model.Balancer
	// Timeouts of every Backend.
	Timeouts model.Timeouts
	// AllowLoopback accepts loopback endpoint addresses (127.0.0.0/8, ::1).
	// The API server rejects them, so only standalone mode sets it.
	AllowLoopback bool
	// KnownFilters reports whether a filter name used without a module is
	// defined (a built-in or named in the config file). Nil accepts every
	// name; the gateway then reports unknown ones when it builds chains.
	KnownFilters func(name string) bool
	// TrustedProxies are the peers whose X-Forwarded-For the rate limits
	// that annotations set (limit-rps, sluice.io/rate-limit) believe, as
	// the proxy does (proxy.trusted_proxies).
	TrustedProxies []netip.Prefix
	// MaxBodyBytes is the request body limit of the routes whose Ingress
	// sets none (proxy-body-size, sluice.io/max-body-size); 0 is no limit.
	MaxBodyBytes int64
	// Now is the instant certificate validity is checked against. Zero means
	// time.Now() at the call; set it for a fully reproducible result.
	Now time.Time
}

// Translate builds the Snapshot served for in, and the warnings about the
// objects (or parts of objects) it could not serve as written.
//
// The result is deterministic: hosts, routes, endpoints, certificates and
// warnings are sorted, whatever the order of the input. The Snapshot shares
// no memory with in (certificate PEM bytes are copied), so in may change
// afterwards. Translate keeps no state and may be called concurrently.
func Translate(in Input, opts Options) (*model.Snapshot, []model.Warning) {
	b := newBuilder(in, opts)
	for _, ing := range b.ownedIngresses(in.Ingresses) {
		b.addIngress(ing)
	}
	b.attachCanaries() // annotations_nginx_routing.go
	return b.snapshot(), b.sortedWarnings()
}

// builder holds the state of one Translate call.
type builder struct {
	opts     Options
	now      time.Time
	warnings []model.Warning

	classes   map[string]*networkingv1.IngressClass // by name
	services  map[nsName]*corev1.Service
	secrets   map[nsName]*corev1.Secret
	endpoints map[nsName][]*discoveryv1.EndpointSlice // by the Service's nsName

	backends map[backendKey]*model.Backend
	certs    map[nsName]*certEntry // by the Secret's nsName
	routes   map[routeKey]*model.Route
	tlsHosts map[string]bool
	hostTLS  map[string]*model.HostTLS // annotations_tls.go

	// filters and filterErr are the chain of the Ingress being added.
	filters   []model.FilterRef
	filterErr string
	// traffic is the traffic policy of the Ingress being added
	// (annotations_nginx_backend.go).
	traffic *model.Traffic
	// routing: annotations_nginx_routing.go.
	routing routingState

	defaultClass   bool // one of our IngressClasses is the default class
	defaultBackend *model.Backend
	defaultSource  model.ObjectRef
}

// nsName identifies a namespaced object.
type nsName struct{ ns, name string }

// backendKey identifies a Backend: a Service port as referenced.
type backendKey struct {
	ns, svc  string
	portName string
	portNum  int32
}

type routeKey struct {
	host     string
	pathType model.PathType
	path     string // normalized: see pathKey
}

func newBuilder(in Input, opts Options) *builder {
	if opts.ControllerName == "" {
		opts.ControllerName = ControllerName
	}
	if opts.ClassNames == nil {
		opts.ClassNames = []string{DefaultClassName}
	}
	if opts.Balancer == "" {
		opts.Balancer = model.BalancerRoundRobin
	}
	b := &builder{
		opts:      opts,
		now:       opts.Now,
		classes:   make(map[string]*networkingv1.IngressClass, len(in.IngressClasses)),
		services:  make(map[nsName]*corev1.Service, len(in.Services)),
		secrets:   make(map[nsName]*corev1.Secret, len(in.Secrets)),
		endpoints: make(map[nsName][]*discoveryv1.EndpointSlice, len(in.EndpointSlices)),
		backends:  make(map[backendKey]*model.Backend),
		certs:     make(map[nsName]*certEntry),
		routes:    make(map[routeKey]*model.Route),
		tlsHosts:  make(map[string]bool),
	}
	if b.now.IsZero() {
		b.now = time.Now()
	}
	for _, c := range in.IngressClasses {
		if c == nil {
			continue
		}
		if _, dup := b.classes[c.Name]; dup {
			b.warn(ref("IngressClass", "", c.Name), "defined more than once in the input; the first definition is used")
			continue
		}
		b.classes[c.Name] = c
		if c.Spec.Controller == opts.ControllerName && c.Annotations[annotationDefaultClass] == "true" {
			b.defaultClass = true
		}
	}
	for _, s := range in.Services {
		if s == nil {
			continue
		}
		k := nsName{s.Namespace, s.Name}
		if _, dup := b.services[k]; dup {
			b.warn(ref("Service", s.Namespace, s.Name), "defined more than once in the input; the first definition is used")
			continue
		}
		b.services[k] = s
	}
	for _, s := range in.Secrets {
		if s == nil {
			continue
		}
		k := nsName{s.Namespace, s.Name}
		if _, dup := b.secrets[k]; dup {
			b.warn(ref("Secret", s.Namespace, s.Name), "defined more than once in the input; the first definition is used")
			continue
		}
		b.secrets[k] = s
	}
	seen := make(map[nsName]bool, len(in.EndpointSlices))
	for _, s := range in.EndpointSlices {
		if s == nil {
			continue
		}
		k := nsName{s.Namespace, s.Name}
		if seen[k] {
			b.warn(ref("EndpointSlice", s.Namespace, s.Name), "defined more than once in the input; the first definition is used")
			continue
		}
		seen[k] = true
		svc := s.Labels[discoveryv1.LabelServiceName]
		if svc == "" {
			continue
		}
		k = nsName{s.Namespace, svc}
		b.endpoints[k] = append(b.endpoints[k], s)
	}
	for _, list := range b.endpoints {
		slices.SortFunc(list, func(x, y *discoveryv1.EndpointSlice) int { return cmp.Compare(x.Name, y.Name) })
	}
	return b
}

// ownedIngresses returns the Ingresses of our classes, without duplicates,
// oldest first (creationTimestamp, then namespace, then name): the order in
// which they claim routes.
func (b *builder) ownedIngresses(all []*networkingv1.Ingress) []*networkingv1.Ingress {
	out := make([]*networkingv1.Ingress, 0, len(all))
	seen := make(map[nsName]bool, len(all))
	for _, ing := range all {
		if ing == nil || !b.owns(ing) {
			continue
		}
		k := nsName{ing.Namespace, ing.Name}
		if seen[k] {
			b.warn(ref("Ingress", ing.Namespace, ing.Name), "defined more than once in the input; the first definition is used")
			continue
		}
		seen[k] = true
		out = append(out, ing)
	}
	slices.SortFunc(out, func(x, y *networkingv1.Ingress) int {
		if c := x.CreationTimestamp.Time.Compare(y.CreationTimestamp.Time); c != 0 {
			return c
		}
		if c := cmp.Compare(x.Namespace, y.Namespace); c != 0 {
			return c
		}
		return cmp.Compare(x.Name, y.Name)
	})
	return out
}

func (b *builder) addIngress(ing *networkingv1.Ingress) {
	src := ref("Ingress", ing.Namespace, ing.Name)
	b.checkAnnotations(ing, src)
	ing = b.nginxCompat(ing, src) // annotations_nginx.go
	b.filters, b.filterErr = b.ingressFilters(ing, src)
	b.addTraffic(ing, src) // annotations_nginx_backend.go
	b.routing.cur = b.parseRouting(ing, src)
	if b.deferCanary(ing, src) {
		return // it routes nothing itself; attachCanaries
	}
	if db := ing.Spec.DefaultBackend; db != nil {
		b.addDefaultBackend(ing, src, db)
	}
	for i := range ing.Spec.Rules {
		b.addRule(ing, src, i)
	}
	for i := range ing.Spec.TLS {
		b.addTLS(ing, src, i)
	}
	b.addHostTLS(ing, src)
}

func (b *builder) addDefaultBackend(ing *networkingv1.Ingress, src model.ObjectRef, db *networkingv1.IngressBackend) {
	const field = "spec.defaultBackend"
	if msg := checkBackendRef(db); msg != "" {
		b.warn(src, field+msg+"; default backend ignored")
		return
	}
	if b.defaultBackend != nil {
		b.warn(src, fmt.Sprintf("%s: ignored: %s already sets the default backend (the oldest Ingress wins)", field, b.defaultSource))
		return
	}
	b.defaultBackend = b.backend(src, backendField{rule: -1}, ing.Namespace, db.Service)
	b.defaultSource = src
}

func (b *builder) addRule(ing *networkingv1.Ingress, src model.ObjectRef, i int) {
	rule := &ing.Spec.Rules[i]
	host, err := normalizeHost(rule.Host)
	if err != nil {
		b.warn(src, fmt.Sprintf("spec.rules[%d].host %q: %v; rule ignored", i, rule.Host, err))
		return
	}
	if rule.HTTP == nil {
		// A rule without paths sends its host to the default backend: no route.
		return
	}
	for j := range rule.HTTP.Paths {
		p := &rule.HTTP.Paths[j]
		pt, key, msg := b.routePathKey(ing, p)
		if msg != "" {
			b.warn(src, fmt.Sprintf("spec.rules[%d].http.paths[%d].%s; path ignored", i, j, msg))
			continue
		}
		if msg := checkBackendRef(&p.Backend); msg != "" {
			b.warn(src, fmt.Sprintf("spec.rules[%d].http.paths[%d].backend%s; path ignored", i, j, msg))
			continue
		}
		k := routeKey{host: host, pathType: pt, path: key}
		if prev, ok := b.routes[k]; ok {
			var owner string
			if prev.Source == src {
				owner = "an earlier path of this Ingress"
			} else {
				owner = prev.Source.String() + " (the oldest Ingress wins)"
			}
			b.warn(src, fmt.Sprintf("spec.rules[%d].http.paths[%d]: host %q %s path %q is already routed by %s; path ignored",
				i, j, host, pt, p.Path, owner))
			continue
		}
		b.routes[k] = &model.Route{
			PathType:    pt,
			Path:        displayPath(p.Path),
			Backend:     b.backend(src, backendField{rule: i, path: j}, ing.Namespace, p.Backend.Service),
			Source:      src,
			Filters:     b.filters,
			FilterError: b.filterErr,
			Traffic:     b.traffic,
			Rewrite:     b.routing.cur.rewrite,
			Redirect:    b.routing.cur.redirect,
			AppRoot:     b.routing.cur.appRoot,
			CORS:        b.routing.cur.cors,
		}
	}
}

// snapshot assembles the sorted Snapshot from the claimed routes.
func (b *builder) snapshot() *model.Snapshot {
	byHost := make(map[string]*model.VirtualHost)
	for k, r := range b.routes {
		vh := byHost[k.host]
		if vh == nil {
			vh = &model.VirtualHost{Name: k.host, TLS: b.hostHasTLS(k.host), TLSPolicy: b.hostTLS[k.host]}
			byHost[k.host] = vh
		}
		vh.Routes = append(vh.Routes, r)
	}
	s := &model.Snapshot{
		Hosts:          make([]*model.VirtualHost, 0, len(byHost)),
		DefaultBackend: b.defaultBackend,
	}
	for _, vh := range byHost {
		slices.SortFunc(vh.Routes, compareRoutes)
		s.Hosts = append(s.Hosts, vh)
	}
	slices.SortFunc(s.Hosts, func(x, y *model.VirtualHost) int { return cmp.Compare(x.Name, y.Name) })
	s.Certificates = b.certificates()
	return s
}

// compareRoutes orders routes by match precedence: longer (normalized) path
// first, Exact before Regex before Prefix on equal length, then by path for
// determinism.
func compareRoutes(x, y *model.Route) int {
	kx, ky := routeMatchKey(x), routeMatchKey(y)
	if c := cmp.Compare(len(ky), len(kx)); c != 0 {
		return c
	}
	if c := cmp.Compare(pathTypeRank(x.PathType), pathTypeRank(y.PathType)); c != 0 {
		return c
	}
	return cmp.Compare(kx, ky)
}

func pathTypeRank(t model.PathType) int {
	switch t {
	case model.PathExact:
		return 0
	case model.PathRegex:
		return 1
	}
	return 2
}

func routeMatchKey(r *model.Route) string {
	if r.PathType == model.PathPrefix {
		return prefixKey(r.Path)
	}
	return r.Path
}

func (b *builder) warn(obj model.ObjectRef, msg string) {
	b.warnings = append(b.warnings, model.Warning{Object: obj, Message: msg})
}

// sortedWarnings orders warnings by object (kind, namespace, name), keeps the
// order in which each object's warnings were found (field order), and drops
// exact repeats.
func (b *builder) sortedWarnings() []model.Warning {
	slices.SortStableFunc(b.warnings, func(x, y model.Warning) int {
		if c := cmp.Compare(x.Object.Kind, y.Object.Kind); c != 0 {
			return c
		}
		if c := cmp.Compare(x.Object.Namespace, y.Object.Namespace); c != 0 {
			return c
		}
		return cmp.Compare(x.Object.Name, y.Object.Name)
	})
	seen := make(map[model.Warning]bool, len(b.warnings))
	out := b.warnings[:0]
	for _, w := range b.warnings {
		if seen[w] {
			continue
		}
		seen[w] = true
		out = append(out, w)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func ref(kind, ns, name string) model.ObjectRef {
	return model.ObjectRef{Kind: kind, Namespace: ns, Name: name}
}
