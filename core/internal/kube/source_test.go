package kube

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/core/internal/translate"
)

// Fixtures: one owned class, an Ingress with a TLS Secret and a backend
// Service with one EndpointSlice, all in namespace "shop".

func class() *networkingv1.IngressClass {
	return &networkingv1.IngressClass{
		ObjectMeta: metav1.ObjectMeta{Name: "sluice", UID: "uid-class"},
		Spec:       networkingv1.IngressClassSpec{Controller: translate.ControllerName},
	}
}

func ingress(ns, name, svc string, tlsSecret string) *networkingv1.Ingress {
	cls := "sluice"
	ing := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + ns + "-" + name)},
		Spec: networkingv1.IngressSpec{
			IngressClassName: &cls,
			Rules: []networkingv1.IngressRule{{
				Host: name + ".example.com",
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
					Paths: []networkingv1.HTTPIngressPath{{
						Path:     "/",
						PathType: ptr(networkingv1.PathTypePrefix),
						Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
							Name: svc, Port: networkingv1.ServiceBackendPort{Number: 80},
						}},
					}},
				}},
			}},
		},
	}
	if tlsSecret != "" {
		ing.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{name + ".example.com"}, SecretName: tlsSecret}}
	}
	return ing
}

func service(ns, name string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
	}
}

func endpointSlice(ns, svc, name string, addrs ...string) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Port: ptr(int32(8080))}},
	}
	for _, a := range addrs {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{a}})
	}
	return es
}

func secret(ns, name string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{"tls.crt": []byte("x"), "tls.key": []byte("y")},
	}
}

func ptr[T any](v T) *T { return &v }

// recorder collects deliveries.
type recorder struct {
	mu  sync.Mutex
	got []translate.Input
	ch  chan struct{}
}

func newRecorder() *recorder { return &recorder{ch: make(chan struct{}, 1000)} }

func (r *recorder) onChange(in translate.Input, w []model.Warning) {
	r.mu.Lock()
	r.got = append(r.got, in)
	r.mu.Unlock()
	r.ch <- struct{}{}
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

func (r *recorder) last() translate.Input {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[len(r.got)-1]
}

// wait waits for the next delivery.
func (r *recorder) wait(t *testing.T, what string) translate.Input {
	t.Helper()
	select {
	case <-r.ch:
		return r.last()
	case <-time.After(10 * time.Second):
		t.Fatalf("no delivery within 10s: %s", what)
		return translate.Input{}
	}
}

// waitFor waits for a delivery that satisfies cond.
func (r *recorder) waitFor(t *testing.T, what string, cond func(translate.Input) bool) translate.Input {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case <-r.ch:
			if in := r.last(); cond(in) {
				return in
			}
		case <-deadline:
			t.Fatalf("no delivery within 10s with %s", what)
		}
	}
}

// quiet asserts that nothing is delivered for d.
func (r *recorder) quiet(t *testing.T, d time.Duration, why string) {
	t.Helper()
	select {
	case <-r.ch:
		t.Fatalf("unexpected delivery (%s): %s", why, describe(r.last()))
	case <-time.After(d):
	}
}

func describe(in translate.Input) string {
	var b strings.Builder
	for _, x := range in.Ingresses {
		fmt.Fprintf(&b, "Ingress %s/%s ", x.Namespace, x.Name)
	}
	for _, x := range in.IngressClasses {
		fmt.Fprintf(&b, "IngressClass %s ", x.Name)
	}
	for _, x := range in.Services {
		fmt.Fprintf(&b, "Service %s/%s ", x.Namespace, x.Name)
	}
	for _, x := range in.EndpointSlices {
		fmt.Fprintf(&b, "EndpointSlice %s/%s ", x.Namespace, x.Name)
	}
	for _, x := range in.Secrets {
		fmt.Fprintf(&b, "Secret %s/%s ", x.Namespace, x.Name)
	}
	return strings.TrimSpace(b.String())
}

// names returns "Kind ns/name" of every object of in, sorted.
func names(in translate.Input) []string {
	out := strings.Fields(strings.NewReplacer("Ingress ", "Ingress:", "IngressClass ", "IngressClass:", "Service ", "Service:", "EndpointSlice ", "EndpointSlice:", "Secret ", "Secret:").Replace(describe(in)))
	sort.Strings(out)
	return out
}

// start runs a Source on client until the test ends.
func start(t *testing.T, opts Options) (*Source, *recorder) {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, rec.onChange) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return within 10s of cancel")
		}
	})
	return s, rec
}

func baseObjects() []k8sruntime.Object {
	return []k8sruntime.Object{
		class(),
		ingress("shop", "web", "web", "web-tls"),
		service("shop", "web"),
		endpointSlice("shop", "web", "web-1", "10.1.0.1"),
		secret("shop", "web-tls"),
	}
}

func TestFirstDeliveryIsTheWholeState(t *testing.T) {
	client := fake.NewClientset(baseObjects()...)
	_, rec := start(t, Options{Client: client, HoldOff: 10 * time.Millisecond})
	in := rec.wait(t, "first delivery")
	want := []string{"EndpointSlice:shop/web-1", "Ingress:shop/web", "IngressClass:sluice", "Secret:shop/web-tls", "Service:shop/web"}
	if got := names(in); !slices.Equal(got, want) {
		t.Fatalf("first delivery: got %v, want %v", got, want)
	}
	// The objects are usable as translate input: one route, one backend
	// with the slice's endpoint.
	snap, _ := translate.Translate(in, translate.Options{})
	if len(snap.Hosts) != 1 || snap.Hosts[0].Routes[0].Backend.Endpoints[0] != "10.1.0.1:8080" {
		t.Fatalf("translated first delivery: %+v", snap.Hosts)
	}
	rec.quiet(t, 200*time.Millisecond, "the initial list must not deliver twice")
}

func TestNothingBeforeCachesSynced(t *testing.T) {
	client := fake.NewClientset(baseObjects()...)
	release := make(chan struct{})
	var blocked atomic.Bool
	client.PrependReactor("list", "services", func(k8stesting.Action) (bool, k8sruntime.Object, error) {
		blocked.Store(true)
		<-release
		return false, nil, nil
	})
	_, rec := start(t, Options{Client: client, HoldOff: 10 * time.Millisecond})
	deadline := time.Now().Add(10 * time.Second)
	for !blocked.Load() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if !blocked.Load() {
		t.Fatal("the Service list never started")
	}
	rec.quiet(t, 300*time.Millisecond, "delivered while the Service cache had not synced")
	close(release)
	if got := names(rec.wait(t, "delivery after sync")); !slices.Contains(got, "Service:shop/web") {
		t.Fatalf("first delivery lacks the Service: %v", got)
	}
}

func TestChangesAreDelivered(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset(baseObjects()...)
	_, rec := start(t, Options{Client: client, HoldOff: 10 * time.Millisecond})
	rec.wait(t, "first delivery")

	for _, tc := range []struct {
		name   string
		change func() error
		check  func(translate.Input) bool
	}{
		{"Ingress added", func() error {
			_, err := client.NetworkingV1().Ingresses("shop").Create(ctx, ingress("shop", "api", "web", ""), metav1.CreateOptions{})
			return err
		}, func(in translate.Input) bool { return len(in.Ingresses) == 2 }},
		{"Ingress updated", func() error {
			ing := ingress("shop", "api", "api", "")
			ing.ResourceVersion = "2"
			_, err := client.NetworkingV1().Ingresses("shop").Update(ctx, ing, metav1.UpdateOptions{})
			return err
		}, func(in translate.Input) bool {
			return slices.ContainsFunc(in.Ingresses, func(i *networkingv1.Ingress) bool {
				return i.Name == "api" && i.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name == "api"
			})
		}},
		{"referenced Service added", func() error {
			_, err := client.CoreV1().Services("shop").Create(ctx, service("shop", "api"), metav1.CreateOptions{})
			return err
		}, func(in translate.Input) bool { return len(in.Services) == 2 }},
		{"EndpointSlice of a referenced Service changed", func() error {
			es := endpointSlice("shop", "web", "web-1", "10.1.0.1", "10.1.0.2")
			es.ResourceVersion = "2"
			_, err := client.DiscoveryV1().EndpointSlices("shop").Update(ctx, es, metav1.UpdateOptions{})
			return err
		}, func(in translate.Input) bool {
			return len(in.EndpointSlices) == 1 && len(in.EndpointSlices[0].Endpoints) == 2
		}},
		{"referenced Secret deleted", func() error {
			return client.CoreV1().Secrets("shop").Delete(ctx, "web-tls", metav1.DeleteOptions{})
		}, func(in translate.Input) bool { return len(in.Secrets) == 0 }},
		{"IngressClass deleted", func() error {
			return client.NetworkingV1().IngressClasses().Delete(ctx, "sluice", metav1.DeleteOptions{})
		}, func(in translate.Input) bool { return len(in.IngressClasses) == 0 }},
		{"Ingress deleted", func() error {
			return client.NetworkingV1().Ingresses("shop").Delete(ctx, "api", metav1.DeleteOptions{})
		}, func(in translate.Input) bool { return len(in.Ingresses) == 1 }},
	} {
		if err := tc.change(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		rec.waitFor(t, tc.name, tc.check)
	}
}

func TestIrrelevantChangesWakeNothing(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset(baseObjects()...)
	_, rec := start(t, Options{Client: client, HoldOff: 10 * time.Millisecond})
	rec.wait(t, "first delivery")

	if _, err := client.CoreV1().Services("shop").Create(ctx, service("shop", "other"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.DiscoveryV1().EndpointSlices("shop").Create(ctx, endpointSlice("shop", "other", "other-1", "10.9.0.1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Secrets("shop").Create(ctx, secret("shop", "unrelated"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The web Service in another namespace is another Service.
	if _, err := client.CoreV1().Services("other").Create(ctx, service("other", "web"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// An update that keeps the resourceVersion is a resync, not a change.
	es := endpointSlice("shop", "web", "web-1", "10.1.0.1")
	es.ResourceVersion = "7"
	if _, err := client.DiscoveryV1().EndpointSlices("shop").Update(ctx, es, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	rec.wait(t, "the first resourceVersion is a change") // "" → "7"
	if _, err := client.DiscoveryV1().EndpointSlices("shop").Update(ctx, es, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	rec.quiet(t, 300*time.Millisecond, "unreferenced objects and an unchanged resourceVersion")

	// Once an Ingress references the other Service, its changes count.
	if _, err := client.NetworkingV1().Ingresses("shop").Create(ctx, ingress("shop", "other", "other", ""), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "the new Ingress", func(in translate.Input) bool { return len(in.Ingresses) == 2 })
	es = endpointSlice("shop", "other", "other-1", "10.9.0.2")
	es.ResourceVersion = "2"
	if _, err := client.DiscoveryV1().EndpointSlices("shop").Update(ctx, es, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "the referenced slice's change", func(in translate.Input) bool {
		return slices.ContainsFunc(in.EndpointSlices, func(e *discoveryv1.EndpointSlice) bool {
			return e.Name == "other-1" && e.Endpoints[0].Addresses[0] == "10.9.0.2"
		})
	})
}

func TestBurstIsBatched(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset(baseObjects()...)
	// A long hold-off: the burst below takes far less, so it is one batch
	// however slow the machine.
	_, rec := start(t, Options{Client: client, HoldOff: time.Second})
	rec.wait(t, "first delivery")
	const n = 50
	for i := range n {
		if _, err := client.NetworkingV1().Ingresses("shop").Create(ctx, ingress("shop", fmt.Sprintf("burst-%d", i), "web", ""), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	in := rec.waitFor(t, "every Ingress of the burst", func(in translate.Input) bool { return len(in.Ingresses) == n+1 })
	if got := rec.count() - 1; got > 2 {
		t.Fatalf("a burst of %d changes made %d deliveries, want 1 (2 if the burst straddled a hold-off)", n, got)
	}
	_ = in
}

func TestNamespace(t *testing.T) {
	objs := append(baseObjects(),
		ingress("other", "web", "web", "web-tls"),
		service("other", "web"),
		endpointSlice("other", "web", "web-1", "10.2.0.1"),
		secret("other", "web-tls"),
	)
	client := fake.NewClientset(objs...)
	_, rec := start(t, Options{Client: client, Namespace: "other", HoldOff: 10 * time.Millisecond})
	want := []string{"EndpointSlice:other/web-1", "Ingress:other/web", "IngressClass:sluice", "Secret:other/web-tls", "Service:other/web"}
	if got := names(rec.wait(t, "first delivery")); !slices.Equal(got, want) {
		t.Fatalf("namespace other: got %v, want %v", got, want)
	}
}

func TestReferencedSecretsOnly(t *testing.T) {
	ctx := context.Background()
	objs := append(baseObjects(), secret("shop", "unrelated"), secret("shop", "later"))
	client := fake.NewClientset(objs...)
	s, rec := start(t, Options{Client: client, ReferencedSecretsOnly: true, HoldOff: 10 * time.Millisecond})
	in := rec.wait(t, "first delivery")
	if got := names(in); !slices.Contains(got, "Secret:shop/web-tls") || slices.Contains(got, "Secret:shop/unrelated") {
		t.Fatalf("referenced only: got %v, want web-tls and no other Secret", got)
	}
	// No list or watch of Secrets without a name selector.
	for _, a := range client.Actions() {
		if a.GetResource().Resource != "secrets" || (a.GetVerb() != "list" && a.GetVerb() != "watch") {
			continue
		}
		var sel string
		switch a := a.(type) {
		case k8stesting.ListAction:
			sel = a.GetListRestrictions().Fields.String()
		case k8stesting.WatchAction:
			sel = a.GetWatchRestrictions().Fields.String()
		}
		if sel != "metadata.name=web-tls" {
			t.Errorf("%s secrets in %q with field selector %q, want metadata.name=web-tls", a.GetVerb(), a.GetNamespace(), sel)
		}
	}

	// A new reference starts a watch; the Secret is in the next delivery.
	ing := ingress("shop", "web", "web", "later")
	ing.ResourceVersion = "2"
	if _, err := client.NetworkingV1().Ingresses("shop").Update(ctx, ing, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	in = rec.waitFor(t, "the newly referenced Secret", func(in translate.Input) bool {
		return slices.Contains(names(in), "Secret:shop/later")
	})
	if got := names(in); slices.Contains(got, "Secret:shop/web-tls") {
		t.Fatalf("no longer referenced Secret still delivered: %v", got)
	}
	// Its changes are delivered.
	sec := secret("shop", "later")
	sec.ResourceVersion = "9"
	sec.Data["tls.crt"] = []byte("changed")
	if _, err := client.CoreV1().Secrets("shop").Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "the Secret's change", func(in translate.Input) bool {
		return len(in.Secrets) == 1 && string(in.Secrets[0].Data["tls.crt"]) == "changed"
	})
	if d := s.Degraded(); d != "" {
		t.Fatalf("degraded: %s", d)
	}
}

func TestDegradedWhileTheServerIsGone(t *testing.T) {
	client := fake.NewClientset(baseObjects()...)
	var down atomic.Bool
	// Ingress watches are fake watchers the test can break.
	var mu sync.Mutex
	var watchers []*watch.RaceFreeFakeWatcher
	client.PrependWatchReactor("ingresses", func(k8stesting.Action) (bool, watch.Interface, error) {
		if down.Load() {
			return true, nil, errors.New("dial tcp 127.0.0.1:6443: connect: connection refused")
		}
		w := watch.NewRaceFreeFake()
		mu.Lock()
		watchers = append(watchers, w)
		mu.Unlock()
		return true, w, nil
	})
	client.PrependReactor("list", "ingresses", func(k8stesting.Action) (bool, k8sruntime.Object, error) {
		if down.Load() {
			return true, nil, errors.New("dial tcp 127.0.0.1:6443: connect: connection refused")
		}
		return false, nil, nil
	})
	s, rec := start(t, Options{Client: client, HoldOff: 10 * time.Millisecond, ProbeInterval: 20 * time.Millisecond})
	rec.wait(t, "first delivery")
	if d := s.Degraded(); d != "" {
		t.Fatalf("degraded before any failure: %s", d)
	}

	down.Store(true)
	mu.Lock()
	for _, w := range watchers {
		w.Stop()
	}
	mu.Unlock()
	waitUntil(t, "degraded", func() bool { return s.Degraded() != "" })
	if d := s.Degraded(); !strings.Contains(d, "api server unreachable: Ingress watch") || !strings.Contains(d, "connection refused") {
		t.Fatalf("degraded message: %q", d)
	}
	// The last state stays: nothing is delivered while the server is gone.
	rec.quiet(t, 200*time.Millisecond, "an outage must not change the routes")

	down.Store(false)
	waitUntil(t, "recovered", func() bool { return s.Degraded() == "" })
}

func TestForbiddenIsNamed(t *testing.T) {
	var h health
	h.init(nil)
	h.log = discardLogger()
	h.fail("Secret", forbidden(), nil)
	if d := h.degraded(); !strings.HasPrefix(d, "api server refuses the Secret watch: ") {
		t.Fatalf("got %q", d)
	}
	h.fail("Ingress", errors.New("eof"), nil)
	if d := h.degraded(); !strings.HasPrefix(d, "api server unreachable: Ingress watch and 1 more: eof") {
		t.Fatalf("got %q", d)
	}
}

func TestRunTwice(t *testing.T) {
	s, err := New(Options{Client: fake.NewClientset()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Run(ctx, func(translate.Input, []model.Warning) {}); err != nil {
		t.Fatalf("first Run with a done context: %v", err)
	}
	if err := s.Run(ctx, func(translate.Input, []model.Warning) {}); err == nil || !strings.Contains(err.Error(), "Run called twice") {
		t.Fatalf("second Run: got %v", err)
	}
}

func TestNewRejects(t *testing.T) {
	for name, tc := range map[string]struct {
		opts Options
		want string
	}{
		"no client":         {Options{}, "kube source: no client"},
		"negative hold-off": {Options{Client: fake.NewClientset(), HoldOff: -time.Second}, "kube source: hold-off -1s is negative"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := New(tc.opts); err == nil || err.Error() != tc.want {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDegradedWhenTheServerDoesNotAnswer(t *testing.T) {
	client := fake.NewClientset(baseObjects()...)
	var down atomic.Bool
	client.PrependReactor("get", "version", func(k8stesting.Action) (bool, k8sruntime.Object, error) {
		if down.Load() {
			return true, nil, errors.New("dial tcp 127.0.0.1:6443: i/o timeout")
		}
		return false, nil, nil
	})
	s, rec := start(t, Options{Client: client, HoldOff: 10 * time.Millisecond, ProbeInterval: 10 * time.Millisecond})
	rec.wait(t, "first delivery")
	down.Store(true)
	waitUntil(t, "degraded", func() bool { return s.Degraded() != "" })
	if d := s.Degraded(); d != "api server unreachable: dial tcp 127.0.0.1:6443: i/o timeout" {
		t.Fatalf("degraded message: %q", d)
	}
	down.Store(false)
	waitUntil(t, "recovered", func() bool { return s.Degraded() == "" })
}

// TestRunLeavesNoGoroutine runs and stops sources, in both Secret modes.
func TestRunLeavesNoGoroutine(t *testing.T) {
	settle := func() int {
		time.Sleep(100 * time.Millisecond)
		return runtime.NumGoroutine()
	}
	before := settle()
	for i := range 4 {
		client := fake.NewClientset(baseObjects()...)
		s, err := New(Options{Client: client, ReferencedSecretsOnly: i%2 == 1, HoldOff: time.Millisecond, Events: true, ProbeInterval: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		rec := newRecorder()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx, rec.onChange) }()
		rec.wait(t, "first delivery")
		s.Report([]model.Warning{badPath})
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	after := settle()
	for after > before && time.Now().Before(deadline) {
		after = settle()
	}
	if after > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("goroutines: %d before, %d after four runs\n%s", before, after, buf[:runtime.Stack(buf, true)])
	}
}
