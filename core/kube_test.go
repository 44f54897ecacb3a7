package core

import (
	"fmt"
	"os"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluicegw/sluice/core/internal/config"
	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/core/internal/translate"
)

// endpointsInput is n Ingresses, each with its own Service and one
// EndpointSlice whose last address octet is ep.
func endpointsInput(n int, ep int) translate.Input {
	class := "sluice"
	var in translate.Input
	for i := range n {
		name := fmt.Sprintf("app-%d", i)
		in.Ingresses = append(in.Ingresses, &networkingv1.Ingress{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
			Spec: networkingv1.IngressSpec{IngressClassName: &class, Rules: []networkingv1.IngressRule{{
				Host: name + ".test",
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
					Path: "/", PathType: ptr(networkingv1.PathTypePrefix),
					Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: name, Port: networkingv1.ServiceBackendPort{Number: 80}}},
				}}}},
			}}},
		})
		in.Services = append(in.Services, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
		})
		in.EndpointSlices = append(in.EndpointSlices, &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: name + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Port: ptr(int32(8080))}},
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{fmt.Sprintf("10.0.%d.%d", i%250, ep)}}},
		})
	}
	return in
}

func newTestGateway(t testing.TB) *Gateway {
	t.Helper()
	g, err := New(Options{Env: []string{"SLUICE_MANIFESTS=" + t.TempDir(), "SLUICE_TLS_STORAGE=" + t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.closeFilters)
	return g
}

func TestEndpointsFastPath(t *testing.T) {
	g := newTestGateway(t)
	first, err := g.build(g.cfg, endpointsInput(3, 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.warnings) != 0 {
		t.Fatalf("warnings: %v", first.warnings)
	}
	g.apply(first)

	// Only endpoints changed: same table, pools updated in place.
	next, err := g.build(g.cfg, endpointsInput(3, 2), nil)
	if err != nil {
		t.Fatal(err)
	}
	if next.table != first.table {
		t.Fatal("an endpoints-only change compiled a new route table")
	}
	g.apply(next)
	if got := g.pools.Get("default/app-1:80").Stats()[0].Addr; got != "10.0.1.2:8080" {
		t.Fatalf("pool endpoint after the fast path: %s, want 10.0.1.2:8080", got)
	}
	if g.live.Load().snap.Hosts[1].Routes[0].Backend.Endpoints[0] != "10.0.1.2:8080" {
		t.Fatal("the served snapshot keeps the old endpoints")
	}

	// A route change, or a config change, takes the full path.
	in := endpointsInput(3, 2)
	in.Ingresses[0].Spec.Rules[0].HTTP.Paths[0].Path = "/v2"
	full, err := g.build(g.cfg, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	if full.table == next.table {
		t.Fatal("a route change reused the route table")
	}
	cfg := *g.cfg
	if st, err := g.build(&cfg, endpointsInput(3, 2), nil); err != nil || st.table == next.table {
		t.Fatalf("a new config reused the route table (err %v)", err)
	}
}

func TestEndpointsFastPathKeepsBuildWarnings(t *testing.T) {
	g := newTestGateway(t)
	srcWarn := []model.Warning{{Object: model.ObjectRef{Kind: "File", Name: "a.yaml"}, Message: "source"}}
	st, err := g.build(g.cfg, endpointsInput(1, 1), srcWarn)
	if err != nil {
		t.Fatal(err)
	}
	// Pretend building added a warning of its own (certificates, TLS,
	// filters do): the fast path must keep it and replace the rest.
	built := model.Warning{Object: model.ObjectRef{Kind: "Certificate"}, Message: "from building"}
	st.warnings = append(st.warnings, built)
	g.apply(st)
	next, err := g.build(g.cfg, endpointsInput(1, 2), nil)
	if err != nil {
		t.Fatal(err)
	}
	if next.table != st.table {
		t.Fatal("not the fast path")
	}
	if !slices.Equal(next.warnings, []model.Warning{built}) || next.translated != 0 {
		t.Fatalf("warnings %v (translated %d), want only the build warning", next.warnings, next.translated)
	}
}

func TestEndpointChanges(t *testing.T) {
	base := func() *model.Snapshot {
		snap, _ := translate.Translate(endpointsInput(2, 1), translate.Options{})
		return snap
	}
	for name, tc := range map[string]struct {
		change func(s *model.Snapshot)
		want   bool
	}{
		"identical":           {func(*model.Snapshot) {}, true},
		"endpoints":           {func(s *model.Snapshot) { s.Hosts[0].Routes[0].Backend.Endpoints = nil }, true},
		"default backend eps": {func(s *model.Snapshot) { s.DefaultBackend = nil }, true},
		"host name":           {func(s *model.Snapshot) { s.Hosts[0].Name = "x.test" }, false},
		"host tls":            {func(s *model.Snapshot) { s.Hosts[0].TLS = true }, false},
		"host removed":        {func(s *model.Snapshot) { s.Hosts = s.Hosts[:1] }, false},
		"route path":          {func(s *model.Snapshot) { s.Hosts[0].Routes[0].Path = "/x" }, false},
		"route added": {func(s *model.Snapshot) {
			s.Hosts[0].Routes = append(s.Hosts[0].Routes, s.Hosts[1].Routes[0])
		}, false},
		"backend timeout": {func(s *model.Snapshot) { s.Hosts[0].Routes[0].Backend.Timeouts.Connect = 1 }, false},
		"backend name":    {func(s *model.Snapshot) { s.Hosts[0].Routes[0].Backend.Name = "other" }, false},
		"filters": {func(s *model.Snapshot) {
			s.Hosts[0].Routes[0].Filters = []model.FilterRef{{Name: "f"}}
		}, false},
		"certificate": {func(s *model.Snapshot) {
			s.Certificates = []*model.Certificate{{CertPEM: []byte("x")}}
		}, false},
	} {
		t.Run(name, func(t *testing.T) {
			a, b := base(), base()
			tc.change(b)
			if name == "default backend eps" {
				a.DefaultBackend, b.DefaultBackend = &model.Backend{Name: "d", Endpoints: []string{"1"}}, &model.Backend{Name: "d"}
			}
			if _, got := endpointChanges(a, b); got != tc.want {
				t.Fatalf("endpointChanges same = %v, want %v", got, tc.want)
			}
		})
	}
	if _, same := endpointChanges(nil, base()); same {
		t.Fatal("nil equals a snapshot")
	}
	// Only the backends whose endpoints differ are returned.
	a, b := base(), base()
	b.Hosts[1].Routes[0].Backend.Endpoints = []string{"10.9.9.9:8080"}
	changed, same := endpointChanges(a, b)
	if !same || len(changed) != 1 || changed[0] != b.Hosts[1].Routes[0].Backend {
		t.Fatalf("changed backends: %v (same %v)", changed, same)
	}
}

// BenchmarkRebuild compares a full rebuild with the EndpointSlice fast path
// for 500 Ingresses, each with its own Service.
func BenchmarkRebuild(b *testing.B) {
	const n = 500
	inputs := [2]translate.Input{endpointsInput(n, 1), endpointsInput(n, 2)}
	b.Run("full", func(b *testing.B) {
		g := newTestGateway(b)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			// A new config each time defeats the fast path.
			cfg := *g.cfg
			st, err := g.build(&cfg, inputs[i%2], nil)
			if err != nil {
				b.Fatal(err)
			}
			g.apply(st)
			i++
		}
	})
	b.Run("endpoints-only", func(b *testing.B) {
		g := newTestGateway(b)
		st, err := g.build(g.cfg, inputs[0], nil)
		if err != nil {
			b.Fatal(err)
		}
		g.apply(st)
		b.ReportAllocs()
		i := 1
		for b.Loop() {
			st, err := g.build(g.cfg, inputs[i%2], nil)
			if err != nil {
				b.Fatal(err)
			}
			if st.table != g.live.Load().table {
				b.Fatal("not the fast path")
			}
			g.apply(st)
			i++
		}
	})
}

// Where the shared storage and the election Lease live, and who this
// replica is in them.
func TestStorageNamespaceAndIdentity(t *testing.T) {
	for _, tc := range []struct {
		key  string
		env  []string
		want string
	}{
		{"edge", []string{"POD_NAMESPACE=ingress"}, "edge"},
		{"", []string{"OTHER=x", "POD_NAMESPACE=ingress"}, "ingress"},
		{"", nil, "sluice"},
	} {
		cfg := &config.Config{Kube: config.Kube{StorageNamespace: tc.key}}
		if got := storageNamespace(cfg, tc.env); got != tc.want {
			t.Errorf("storageNamespace(key %q, env %q) = %q, want %q", tc.key, tc.env, got, tc.want)
		}
	}
	if got := replicaIdentity([]string{"POD_NAME=sluice-7d9f-abcde"}); got != "sluice-7d9f-abcde" {
		t.Errorf("replicaIdentity = %q, want the pod name", got)
	}
	if host, _ := os.Hostname(); replicaIdentity(nil) != host {
		t.Errorf("replicaIdentity without POD_NAME = %q, want the host name %q", replicaIdentity(nil), host)
	}
}

// TestEndpointsFastPathCanary: a canary backend's endpoints take the fast
// path like a route's; a change to the canary itself does not.
func TestEndpointsFastPathCanary(t *testing.T) {
	canaryInput := func(ep int, weight string) translate.Input {
		in := endpointsInput(2, ep)
		c := in.Ingresses[1]
		c.Annotations = map[string]string{
			"nginx.ingress.kubernetes.io/canary":        "true",
			"nginx.ingress.kubernetes.io/canary-weight": weight,
		}
		c.Spec.Rules[0].Host = "app-0.test" // the main route's host and path
		return in
	}
	g := newTestGateway(t)
	first, err := g.build(g.cfg, canaryInput(1, "20"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.warnings) != 0 {
		t.Fatalf("warnings: %v", first.warnings)
	}
	if c := first.snap.Hosts[0].Routes[0].Canary; c == nil || c.Backend.Name != "default/app-1:80" {
		t.Fatalf("no canary on the main route: %+v", first.snap.Hosts[0].Routes[0])
	}
	g.apply(first)

	next, err := g.build(g.cfg, canaryInput(2, "20"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if next.table != first.table {
		t.Fatal("an endpoints-only change of the canary compiled a new route table")
	}
	g.apply(next)
	if got := g.pools.Get("default/app-1:80").Stats()[0].Addr; got != "10.0.1.2:8080" {
		t.Fatalf("canary pool endpoint after the fast path: %s, want 10.0.1.2:8080", got)
	}

	full, err := g.build(g.cfg, canaryInput(2, "50"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if full.table == next.table {
		t.Fatal("a changed canary weight reused the route table")
	}
}
