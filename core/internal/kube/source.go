// Package kube is the cluster-mode route source: client-go shared informers
// for Ingress, IngressClass, Service, EndpointSlice and Secret objects feed
// the same translate.Input that the manifest folder fills in standalone mode.
//
// # Notes
//
//   - Nothing is delivered before every informer cache has synced; the
//     first delivery is the complete current state.
//   - Changes are batched: a delivery happens once no relevant change came
//     for the hold-off (at most ten hold-offs after the first change of a
//     burst), so a burst rebuilds once.
//   - Changes that cannot affect the routes are dropped before they wake
//     anything: updates that do not change an object's resourceVersion,
//     and Services, EndpointSlices and Secrets that no Ingress references.
//   - When the API server goes away, the caches keep the last state, so the
//     gateway keeps serving it; client-go reconnects and re-lists, and a
//     re-list that changed something is delivered like any other change.
//     Degraded reports the outage meanwhile.
//   - Report turns translation warnings into Kubernetes Events of type
//     Warning on the objects they name, once per distinct warning.
package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/core/internal/translate"
)

// DefaultHoldOff is the hold-off used when Options.HoldOff is zero.
const DefaultHoldOff = 100 * time.Millisecond

// DefaultProbeInterval is the probe interval used when
// Options.ProbeInterval is zero.
const DefaultProbeInterval = 2 * time.Second

// maxHoldOffFactor bounds how long a stream of changes can delay a
// delivery: at most this many hold-offs after the first change of a batch.
const maxHoldOffFactor = 10

// Options configure a Source.
type Options struct {
	// Client reaches the API server. Required.
	Client kubernetes.Interface
	// Namespace limits the namespaced watches to one namespace; empty means
	// all namespaces. IngressClasses are cluster-scoped and always watched.
	Namespace string
	// ReferencedSecretsOnly watches each Secret that an Ingress names with
	// its own watch (a field selector on its name), instead of every Secret
	// of the watched namespaces: the gateway then caches, and needs RBAC
	// access to, no other Secret.
	ReferencedSecretsOnly bool
	// HoldOff batches bursts of changes; zero means DefaultHoldOff.
	HoldOff time.Duration
	// Events makes Report record Warning Events. Without it Report only
	// remembers what it was given.
	Events bool
	// Component is the source.component of recorded Events; empty means
	// "sluice".
	Component string
	// Logger receives connection problems and Event failures; nil discards.
	Logger *slog.Logger
	// ProbeInterval is how often the API server is asked for its version
	// to tell whether it is reachable (and failed watches are retried);
	// zero means DefaultProbeInterval.
	ProbeInterval time.Duration
}

// Source delivers the objects of one cluster. Create it with New, then call
// Run once. Degraded and Report are safe for concurrent use at any time.
type Source struct {
	opts    Options
	client  kubernetes.Interface
	log     *slog.Logger
	started atomic.Bool

	// wake is signalled (never blocking) when a relevant change arrived.
	wake chan struct{}
	// refs is what the Ingresses of the last delivery reference; event
	// handlers read it to drop changes of unreferenced objects.
	refs atomic.Pointer[references]

	listers atomic.Pointer[listers] // nil until Run has built them

	health health
	events eventRecorder
}

// watchedKind is one informer and the filter of its events.
type watchedKind struct {
	kind     string
	informer cache.SharedIndexInformer
	relevant func(obj any) bool
}

// listers read the informer caches.
type listers struct {
	ingresses cache.Indexer
	classes   cache.Indexer
	services  cache.Indexer
	slices    cache.Indexer
	secrets   secretReader
}

// secretReader is where Secrets are read from: one informer for all, or one
// per referenced Secret. Both methods are safe for concurrent use, never
// block, and return only cached objects (get: nil when absent).
type secretReader interface {
	get(ns, name string) *corev1.Secret
	list() []*corev1.Secret
}

// Interface guards.
var (
	_ secretReader = indexerSecrets{}
	_ secretReader = (*secretWatchers)(nil)
)

// New checks opts and returns a Source. It starts nothing and contacts no
// server.
func New(opts Options) (*Source, error) {
	if opts.Client == nil {
		return nil, errors.New("kube source: no client")
	}
	if opts.HoldOff < 0 {
		return nil, fmt.Errorf("kube source: hold-off %s is negative", opts.HoldOff)
	}
	if opts.HoldOff == 0 {
		opts.HoldOff = DefaultHoldOff
	}
	if opts.ProbeInterval <= 0 {
		opts.ProbeInterval = DefaultProbeInterval
	}
	if opts.Component == "" {
		opts.Component = "sluice"
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Source{
		opts:   opts,
		client: opts.Client,
		log:    log,
		wake:   make(chan struct{}, 1),
	}
	s.refs.Store(&references{})
	s.health.init(log)
	s.events.init(s)
	return s, nil
}

// Degraded returns "" while the API server is reachable and every watch
// works, else why not (e.g. "api server unreachable: Get
// \"https://…/version\": … connection refused", or "api server refuses the
// Secret watch: …").
// The routes of the last delivery stay served meanwhile.
func (s *Source) Degraded() string { return s.health.degraded() }

// Run watches the cluster and calls onChange with the full set of objects:
// first once every cache has synced, then after each batch of relevant
// changes. onChange is called from the goroutine running Run, one call at a
// time, and must not keep the Input's objects beyond their read-only use:
// they are the informers' cached objects, which are never modified in
// place.
//
// Run blocks until ctx is done and returns nil then; it returns an error
// only when called a second time or when an informer cannot be set up. An unreachable API server is no error:
// Run waits (before the first delivery) or keeps the last state (after it)
// and reports Degraded until the server is back. It leaves no goroutine
// behind.
func (s *Source) Run(ctx context.Context, onChange func(translate.Input, []model.Warning)) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("kube source: Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	factory := informers.NewSharedInformerFactoryWithOptions(s.client, 0,
		informers.WithNamespace(s.opts.Namespace),
		informers.WithTransform(dropManagedFields))
	defer func() {
		cancel()
		factory.Shutdown() // waits for the informers' goroutines
		wg.Wait()
	}()

	ingresses := factory.Networking().V1().Ingresses().Informer()
	classes := factory.Networking().V1().IngressClasses().Informer()
	services := factory.Core().V1().Services().Informer()
	slices := factory.Discovery().V1().EndpointSlices().Informer()
	watched := []watchedKind{
		{"Ingress", ingresses, func(any) bool { return true }},
		{"IngressClass", classes, func(any) bool { return true }},
		{"Service", services, s.serviceRelevant},
		{"EndpointSlice", slices, s.sliceRelevant},
	}
	var secrets secretReader
	var perSecret *secretWatchers
	if s.opts.ReferencedSecretsOnly {
		perSecret = newSecretWatchers(s)
		defer perSecret.stopAll()
		secrets = perSecret
	} else {
		inf := factory.Core().V1().Secrets().Informer()
		watched = append(watched, watchedKind{"Secret", inf, s.secretRelevant})
		secrets = indexerSecrets{inf.GetIndexer()}
	}
	synced := make([]cache.InformerSynced, 0, len(watched))
	for _, w := range watched {
		if err := w.informer.SetWatchErrorHandlerWithContext(s.health.watchErrorHandler(w.kind, s.probeList(w.kind))); err != nil {
			return fmt.Errorf("kube source: %s informer: %w", w.kind, err)
		}
		reg, err := w.informer.AddEventHandler(s.handler(w.relevant))
		if err != nil {
			return fmt.Errorf("kube source: %s informer: %w", w.kind, err)
		}
		// The registration has synced once the handler has seen the whole
		// initial list, so the wake-ups of that list can be dropped below.
		synced = append(synced, reg.HasSynced)
	}
	s.listers.Store(&listers{
		ingresses: ingresses.GetIndexer(),
		classes:   classes.GetIndexer(),
		services:  services.GetIndexer(),
		slices:    slices.GetIndexer(),
		secrets:   secrets,
	})

	wg.Add(2)
	go func() { defer wg.Done(); s.health.probeLoop(ctx, s.opts.ProbeInterval, s.probeServer) }()
	go func() { defer wg.Done(); s.events.run(ctx) }()

	factory.Start(ctx.Done())
	if !s.waitSynced(ctx, synced) {
		return nil
	}
	s.log.Info("kube caches synced", "namespace", namespaceName(s.opts.Namespace))

	deliver := func() {
		in := s.snapshot(ctx, perSecret)
		if ctx.Err() != nil {
			return
		}
		onChange(in, nil)
	}
	// The initial list woke the loop; the first delivery reads it all. A
	// change after that is in the caches too, since an informer updates its
	// cache before it calls the handlers.
	select {
	case <-s.wake:
	default:
	}
	deliver()

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var pending bool
	var deadline time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
			now := time.Now()
			if !pending {
				pending = true
				deadline = now.Add(maxHoldOffFactor * s.opts.HoldOff)
			}
			timer.Reset(min(s.opts.HoldOff, deadline.Sub(now)))
		case <-timer.C:
			pending = false
			deliver()
		}
	}
}

// probeServer asks the API server for its version.
func (s *Source) probeServer(ctx context.Context) error {
	_, err := s.client.Discovery().ServerVersionWithContext(ctx)
	return err
}

// waitSynced waits until every informer synced, logging while the API
// server keeps it waiting. It reports false when ctx ended first.
func (s *Source) waitSynced(ctx context.Context, synced []cache.InformerSynced) bool {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	nextLog := start.Add(5 * time.Second)
	for {
		all := true
		for _, f := range synced {
			all = all && f()
		}
		if all {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case now := <-tick.C:
			if now.After(nextLog) {
				s.log.Warn("waiting for kube caches to sync; nothing is served until they do", "waited", now.Sub(start).Round(time.Second), "problem", s.Degraded())
				nextLog = now.Add(10 * time.Second)
			}
		}
	}
}

// snapshot reads the caches into an Input. It first updates the reference
// index from the Ingresses, so that a change of a newly referenced object
// that arrives later is seen as relevant, and one that arrived earlier is
// already in the caches read after it.
func (s *Source) snapshot(ctx context.Context, perSecret *secretWatchers) translate.Input {
	l := s.listers.Load()
	var in translate.Input
	in.Ingresses = listAs[*networkingv1.Ingress](l.ingresses)
	refs := index(in.Ingresses)
	s.refs.Store(refs)
	if perSecret != nil {
		perSecret.update(ctx, refs.secrets)
	}
	in.IngressClasses = listAs[*networkingv1.IngressClass](l.classes)
	in.Services = listAs[*corev1.Service](l.services)
	in.EndpointSlices = listAs[*discoveryv1.EndpointSlice](l.slices)
	in.Secrets = l.secrets.list()
	return in
}

// listAs lists a cache's objects of type T.
func listAs[T any](idx cache.Indexer) []T {
	objs := idx.List()
	out := make([]T, 0, len(objs))
	for _, o := range objs {
		if v, ok := o.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// handler returns event handlers that wake the delivery loop for relevant
// changes.
func (s *Source) handler(relevant func(any) bool) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if relevant(obj) {
				s.notify()
			}
		},
		UpdateFunc: func(oldObj, newObj any) {
			if sameVersion(oldObj, newObj) {
				return // a resync or a re-list that changed nothing
			}
			if relevant(oldObj) || relevant(newObj) {
				s.notify()
			}
		},
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if relevant(obj) {
				s.notify()
			}
		},
	}
}

func (s *Source) notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// sameVersion reports whether a and b carry the same, known
// resourceVersion: the same object state.
func sameVersion(a, b any) bool {
	ma, err1 := meta.Accessor(a)
	mb, err2 := meta.Accessor(b)
	if err1 != nil || err2 != nil {
		return false
	}
	v := ma.GetResourceVersion()
	return v != "" && v == mb.GetResourceVersion()
}

func (s *Source) serviceRelevant(obj any) bool {
	svc, ok := obj.(*corev1.Service)
	return ok && s.refs.Load().services[nsName{svc.Namespace, svc.Name}]
}

func (s *Source) sliceRelevant(obj any) bool {
	es, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return false
	}
	svc := es.Labels[discoveryv1.LabelServiceName]
	return svc != "" && s.refs.Load().services[nsName{es.Namespace, svc}]
}

func (s *Source) secretRelevant(obj any) bool {
	sec, ok := obj.(*corev1.Secret)
	return ok && s.refs.Load().secrets[nsName{sec.Namespace, sec.Name}]
}

// dropManagedFields is an informer transform: the gateway never reads
// metadata.managedFields, which can be most of a small object's size.
func dropManagedFields(obj any) (any, error) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

// indexerSecrets reads Secrets from the one Secret informer.
type indexerSecrets struct{ idx cache.Indexer }

func (x indexerSecrets) get(ns, name string) *corev1.Secret {
	o, ok, err := x.idx.GetByKey(ns + "/" + name)
	if err != nil || !ok {
		return nil
	}
	sec, _ := o.(*corev1.Secret)
	return sec
}

func (x indexerSecrets) list() []*corev1.Secret { return listAs[*corev1.Secret](x.idx) }

// lookup returns the cached object a warning names, or nil.
func (s *Source) lookup(ref model.ObjectRef) (obj any, apiVersion string) {
	l := s.listers.Load()
	if l == nil {
		return nil, ""
	}
	key := ref.Name
	if ref.Namespace != "" {
		key = ref.Namespace + "/" + ref.Name
	}
	get := func(idx cache.Indexer) any {
		o, ok, err := idx.GetByKey(key)
		if err != nil || !ok {
			return nil
		}
		return o
	}
	switch ref.Kind {
	case "Ingress":
		return get(l.ingresses), "networking.k8s.io/v1"
	case "IngressClass":
		return get(l.classes), "networking.k8s.io/v1"
	case "Service":
		return get(l.services), "v1"
	case "EndpointSlice":
		return get(l.slices), "discovery.k8s.io/v1"
	case "Secret":
		if sec := l.secrets.get(ref.Namespace, ref.Name); sec != nil {
			return sec, "v1"
		}
	}
	return nil, ""
}

func namespaceName(ns string) string {
	if ns == "" {
		return "(all)"
	}
	return ns
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
