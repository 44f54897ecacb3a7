package core

import (
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluicegw/sluice/core/internal/translate"
)

// TestFilterReloadsDoNotLeak swaps a route's module 1000 times through the
// gateway's own build and apply, and checks that compiled modules, filters,
// goroutines and memory do not grow.
func TestFilterReloadsDoNotLeak(t *testing.T) {
	old := filterGrace
	filterGrace = 0
	defer func() { filterGrace = old }()

	g, err := New(Options{Flags: nil, Env: []string{"SLUICE_MANIFESTS=" + t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.closeFilters()
	modules := []string{"noop", "headers"}
	input := func(i int) translate.Input {
		p, _ := filepath.Abs(filepath.Join("..", "wasm", "testdata", modules[i%2]+".wasm"))
		class := "sluice"
		return translate.Input{
			Services: []*corev1.Service{{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
				Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}},
			Ingresses: []*networkingv1.Ingress{{
				ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", Annotations: map[string]string{
					translate.FiltersAnnotation: "- name: f\n  module: file://" + p + "\n",
				}},
				Spec: networkingv1.IngressSpec{IngressClassName: &class, DefaultBackend: nil, Rules: []networkingv1.IngressRule{{
					Host: "web.test",
					IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
						Path: "/", PathType: ptr(networkingv1.PathTypePrefix),
						Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}},
					}}}},
				}}},
			}},
		}
	}
	step := func(i int) {
		st, err := g.build(g.cfg, input(i), nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.warnings) != 0 {
			t.Fatalf("reload %d: warnings %v", i, st.warnings)
		}
		g.apply(st)
	}
	// Warm up, then measure.
	for i := range 20 {
		step(i)
	}
	settle := func() (int, uint64) {
		time.Sleep(50 * time.Millisecond)
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return runtime.NumGoroutine(), ms.HeapAlloc
	}
	g0, h0 := settle()
	for i := range 1000 {
		step(i)
	}
	waitFor := time.Now().Add(5 * time.Second)
	for g.filters.host.Modules() > 1 && time.Now().Before(waitFor) {
		time.Sleep(10 * time.Millisecond)
	}
	g1, h1 := settle()
	if n := g.filters.host.Modules(); n != 1 {
		t.Errorf("compiled modules after 1000 swaps: %d, want 1", n)
	}
	if n := len(g.filters.byKey); n != 1 {
		t.Errorf("live filters: %d, want 1", n)
	}
	if g1 > g0+2 {
		t.Errorf("goroutines grew from %d to %d", g0, g1)
	}
	if h1 > h0+16<<20 {
		t.Errorf("heap grew from %d to %d bytes over 1000 swaps", h0, h1)
	}
	t.Logf("1000 swaps: goroutines %d → %d, heap %d → %d KiB, retired kept %d", g0, g1, h0>>10, h1>>10, len(g.filters.retired))
}

func ptr[T any](v T) *T { return &v }

// TestFilterLoadFailureOncePerBuild: a module that cannot load is tried
// once per build and warned about once per Ingress, however many paths use it.
func TestFilterLoadFailureOncePerBuild(t *testing.T) {
	g, err := New(Options{Env: []string{"SLUICE_MANIFESTS=" + t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.closeFilters()
	class := "sluice"
	missing := filepath.Join(t.TempDir(), "missing.wasm")
	var paths []networkingv1.HTTPIngressPath
	for _, p := range []string{"/a", "/b", "/c"} {
		paths = append(paths, networkingv1.HTTPIngressPath{Path: p, PathType: ptr(networkingv1.PathTypePrefix),
			Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}}})
	}
	in := translate.Input{
		Ingresses: []*networkingv1.Ingress{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", Annotations: map[string]string{
				translate.FiltersAnnotation: "- name: f\n  module: file://" + missing + "\n",
			}},
			Spec: networkingv1.IngressSpec{IngressClassName: &class, Rules: []networkingv1.IngressRule{{
				Host: "web.test", IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: paths}},
			}}},
		}},
	}
	st, err := g.build(g.cfg, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	var filterWarnings int
	for _, w := range st.warnings {
		if strings.Contains(w.Message, "missing.wasm") {
			filterWarnings++
		}
	}
	if filterWarnings != 1 || len(st.chains.failed) != 1 || len(st.chains.handlers) != 3 {
		t.Fatalf("warnings about the module: %d (want 1), failed loads: %d (want 1), routes with a 503 handler: %d (want 3)\n%v",
			filterWarnings, len(st.chains.failed), len(st.chains.handlers), st.warnings)
	}
}
