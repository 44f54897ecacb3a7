package status_test

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/sluicegw/sluice/core/internal/status"
	"github.com/sluicegw/sluice/core/internal/translate"
	"github.com/sluicegw/sluice/internal/kubetest"
)

func ptr[T any](v T) *T { return &v }

func ingress(name string, class *string, annotation string) *networkingv1.Ingress {
	ing := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: networkingv1.IngressSpec{IngressClassName: class, Rules: []networkingv1.IngressRule{{
			Host: name + ".example.com",
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
				Path: "/", PathType: ptr(networkingv1.PathTypePrefix),
				Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}},
			}}}},
		}}},
	}
	if annotation != "" {
		ing.Annotations = map[string]string{"kubernetes.io/ingress.class": annotation}
	}
	return ing
}

// Owned picks exactly the Ingresses that translate serves, class rule by
// class rule.
func TestOwnedMatchesTranslate(t *testing.T) {
	class := func(name, controller string, isDefault bool) *networkingv1.IngressClass {
		c := &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: networkingv1.IngressClassSpec{Controller: controller}}
		if isDefault {
			c.Annotations = map[string]string{networkingv1.AnnotationIsDefaultIngressClass: "true"}
		}
		return c
	}
	ingresses := []*networkingv1.Ingress{
		ingress("by-field", ptr("sluice"), ""),
		ingress("by-annotation", nil, "sluice"),
		ingress("other-controller", ptr("nginx"), ""),
		ingress("no-class-object", ptr("legacy"), ""),
		ingress("no-class", nil, ""),
		ingress("field-wins", ptr("nginx"), "sluice"),
	}
	for _, tc := range []struct {
		name       string
		classes    []*networkingv1.IngressClass
		classNames []string
		want       []string
	}{
		{"classes", []*networkingv1.IngressClass{class("sluice", translate.ControllerName, false), class("nginx", "k8s.io/ingress-nginx", false)}, []string{"sluice"}, []string{"by-field", "by-annotation"}},
		{"default class", []*networkingv1.IngressClass{class("sluice", translate.ControllerName, true), class("nginx", "k8s.io/ingress-nginx", false)}, []string{"sluice"}, []string{"by-field", "by-annotation", "no-class"}},
		{"names without objects", nil, []string{"legacy", "sluice"}, []string{"by-field", "by-annotation", "no-class-object"}},
		{"other controller owns sluice", []*networkingv1.IngressClass{class("sluice", "example.com/other", false)}, []string{"sluice"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, n := range status.Owned(ingresses, tc.classes, translate.ControllerName, tc.classNames) {
				got = append(got, n.Name)
			}
			snap, _ := translate.Translate(translate.Input{Ingresses: ingresses, IngressClasses: tc.classes},
				translate.Options{ControllerName: translate.ControllerName, ClassNames: tc.classNames})
			var served []string
			for _, h := range snap.Hosts {
				for _, r := range h.Routes {
					if !slices.Contains(served, r.Source.Name) {
						served = append(served, r.Source.Name)
					}
				}
			}
			slices.Sort(got)
			slices.Sort(served)
			want := slices.Sorted(slices.Values(tc.want))
			if !slices.Equal(got, want) || !slices.Equal(served, want) {
				t.Errorf("Owned = %q, translate served %q, want %q", got, served, want)
			}
		})
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	good := func() status.Options {
		return status.Options{Client: fake.NewClientset(), Namespace: "sluice", LeaseName: "l", Identity: "a",
			LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: time.Second}
	}
	if _, err := status.New(good()); err != nil {
		t.Fatalf("New(good options): %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(*status.Options)
		want   string
	}{
		{"no client", func(o *status.Options) { o.Client = nil }, "no Kubernetes client"},
		{"no lease name", func(o *status.Options) { o.LeaseName = "" }, "no namespace or name"},
		{"no identity", func(o *status.Options) { o.Identity = "" }, "no identity"},
		{"renew over lease", func(o *status.Options) { o.RenewDeadline = 5 * time.Second }, "renew deadline (5s) < lease duration (3s)"},
		{"publish service", func(o *status.Options) { o.PublishService = "sluice" }, `publish service "sluice" is not NAMESPACE/NAME`},
	} {
		o := good()
		tc.change(&o)
		if _, err := status.New(o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

// Two updaters on a real API server: one writes, the other takes over
// within the lease duration after the first one stops renewing (its
// context ends without releasing, as when a process dies), and a change of
// the published Service reaches the Ingresses.
func TestLeaderWritesStatus(t *testing.T) {
	c := kubetest.Start(t)
	ctx := context.Background()
	for _, o := range []struct {
		create func() error
	}{
		{func() error {
			_, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "sluice"}}, metav1.CreateOptions{})
			return err
		}},
		{func() error {
			_, err := c.Client.NetworkingV1().Ingresses("default").Create(ctx, ingress("web", ptr("sluice"), ""), metav1.CreateOptions{})
			return err
		}},
		{func() error {
			_, err := c.Client.CoreV1().Services("sluice").Create(ctx, &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Name: "sluice"},
				Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 443}}},
			}, metav1.CreateOptions{})
			return err
		}},
	} {
		if err := o.create(); err != nil {
			t.Fatal(err)
		}
	}
	setLB := func(ip string) {
		svc, err := c.Client.CoreV1().Services("sluice").Get(ctx, "sluice", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip}}
		if _, err := c.Client.CoreV1().Services("sluice").UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	setLB("192.0.2.1")

	lease := 3 * time.Second
	start := func(id string) (*status.Updater, context.CancelFunc, chan struct{}) {
		u, err := status.New(status.Options{
			Client: c.Client, Namespace: "sluice", LeaseName: "sluice-leader", Identity: id,
			LeaseDuration: lease, RenewDeadline: 2 * time.Second, RetryPeriod: 500 * time.Millisecond,
			PublishService: "sluice/sluice", Resync: 300 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		u.SetIngresses([]types.NamespacedName{{Namespace: "default", Name: "web"}})
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); u.Run(runCtx) }()
		t.Cleanup(func() { cancel(); <-done })
		return u, cancel, done
	}
	waitStatus := func(ip string, d time.Duration) time.Duration {
		t.Helper()
		begin := time.Now()
		for time.Since(begin) < d {
			ing, err := c.Client.NetworkingV1().Ingresses("default").Get(ctx, "web", metav1.GetOptions{})
			if err == nil && len(ing.Status.LoadBalancer.Ingress) == 1 && ing.Status.LoadBalancer.Ingress[0].IP == ip {
				return time.Since(begin)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("Ingress default/web status is not %s after %s", ip, d)
		return 0
	}

	a, stopA, doneA := start("a")
	waitStatus("192.0.2.1", 10*time.Second)
	b, _, _ := start("b")
	time.Sleep(time.Second)
	if !a.Leading() || b.Leading() {
		t.Fatalf("leading: a %v, b %v; want a only", a.Leading(), b.Leading())
	}
	setLB("192.0.2.2") // the cloud changed the load balancer: the leader follows
	waitStatus("192.0.2.2", 10*time.Second)

	// a stops cleanly: it releases the Lease, and b takes over without
	// waiting for it to expire (a killed leader: cmd/sluice replicas e2e).
	stopA()
	<-doneA
	begin := time.Now()
	for !b.Leading() {
		if time.Since(begin) > 2*lease {
			t.Fatalf("b does not lead %s after a released the Lease", 2*lease)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("b leads %s after a stopped", time.Since(begin).Round(time.Millisecond))
	setLB("192.0.2.3")
	waitStatus("192.0.2.3", 10*time.Second)
}

func TestAddresses(t *testing.T) {
	got := status.Addresses([]string{"192.0.2.1", "lb.example.com", "2001:db8::1"})
	want := []networkingv1.IngressLoadBalancerIngress{{IP: "192.0.2.1"}, {Hostname: "lb.example.com"}, {IP: "2001:db8::1"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Addresses = %+v, want %+v", got, want)
	}
	if status.Addresses(nil) != nil {
		t.Error("Addresses(nil) is not nil (nil means: publish nothing)")
	}
}
