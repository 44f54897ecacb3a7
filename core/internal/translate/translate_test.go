package translate_test

import (
	"encoding/json"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/core/internal/translate"
)

// Builders for the table tests: just enough to write objects in one line.

type ingressOpt func(*networkingv1.Ingress)

func ingress(ns, name string, opts ...ingressOpt) *networkingv1.Ingress {
	ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	cls := "sluice"
	ing.Spec.IngressClassName = &cls
	for _, o := range opts {
		o(ing)
	}
	return ing
}

func className(c string) ingressOpt {
	return func(ing *networkingv1.Ingress) {
		if c == "" {
			ing.Spec.IngressClassName = nil
			return
		}
		ing.Spec.IngressClassName = &c
	}
}

func annotation(k, v string) ingressOpt {
	return func(ing *networkingv1.Ingress) {
		if ing.Annotations == nil {
			ing.Annotations = map[string]string{}
		}
		ing.Annotations[k] = v
	}
}

func created(day int) ingressOpt {
	return func(ing *networkingv1.Ingress) {
		ing.CreationTimestamp = metav1.NewTime(time.Date(2026, 1, day, 0, 0, 0, 0, time.UTC))
	}
}

func rule(host string, paths ...networkingv1.HTTPIngressPath) ingressOpt {
	return func(ing *networkingv1.Ingress) {
		r := networkingv1.IngressRule{Host: host}
		if paths != nil {
			r.HTTP = &networkingv1.HTTPIngressRuleValue{Paths: paths}
		}
		ing.Spec.Rules = append(ing.Spec.Rules, r)
	}
}

func defaultBackend(svc string, port int32) ingressOpt {
	return func(ing *networkingv1.Ingress) { ing.Spec.DefaultBackend = svcBackend(svc, port) }
}

func tlsFor(secret string, hosts ...string) ingressOpt {
	return func(ing *networkingv1.Ingress) {
		ing.Spec.TLS = append(ing.Spec.TLS, networkingv1.IngressTLS{Hosts: hosts, SecretName: secret})
	}
}

func svcBackend(svc string, port int32) *networkingv1.IngressBackend {
	return &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
		Name: svc, Port: networkingv1.ServiceBackendPort{Number: port}}}
}

func path(pt networkingv1.PathType, p, svc string, port int32) networkingv1.HTTPIngressPath {
	return networkingv1.HTTPIngressPath{Path: p, PathType: &pt, Backend: *svcBackend(svc, port)}
}

func prefix(p, svc string, port int32) networkingv1.HTTPIngressPath {
	return path(networkingv1.PathTypePrefix, p, svc, port)
}

func service(ns, name string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{Ports: ports}}
}

func port(name string, number int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: number}
}

func endpointSlice(ns, name, svc string, t discoveryv1.AddressType, portName string, portNum int32, addrs ...string) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: t,
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &portNum}},
	}
	for _, a := range addrs {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{a}})
	}
	return s
}

func ingressClass(name, controller string, isDefault bool) *networkingv1.IngressClass {
	c := &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: networkingv1.IngressClassSpec{Controller: controller}}
	if isDefault {
		c.Annotations = map[string]string{networkingv1.AnnotationIsDefaultIngressClass: "true"}
	}
	return c
}

// Builders for expected values.

func wantBackend(ns, svc, portRef string, eps ...string) *model.Backend {
	if eps == nil {
		eps = []string{}
	}
	return &model.Backend{
		Name:      ns + "/" + svc + ":" + portRef,
		Service:   model.ObjectRef{Kind: "Service", Namespace: ns, Name: svc},
		Protocol:  model.ProtocolHTTP,
		Balancer:  model.BalancerRoundRobin,
		Endpoints: eps,
	}
}

func wantRoute(pt model.PathType, p string, be *model.Backend, ns, ing string) *model.Route {
	return &model.Route{PathType: pt, Path: p, Backend: be, Source: model.ObjectRef{Kind: "Ingress", Namespace: ns, Name: ing}}
}

func host(name string, routes ...*model.Route) *model.VirtualHost {
	return &model.VirtualHost{Name: name, Routes: routes}
}

func snapshot(hosts ...*model.VirtualHost) *model.Snapshot {
	if hosts == nil {
		hosts = []*model.VirtualHost{}
	}
	return &model.Snapshot{Hosts: hosts}
}

var now = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func TestTranslate(t *testing.T) {
	web := service("default", "web", port("", 80))
	webEPs := endpointSlice("default", "web-1", "web", discoveryv1.AddressTypeIPv4, "", 8080, "10.0.0.1")
	webBE := wantBackend("default", "web", "80", "10.0.0.1:8080")

	tests := map[string]struct {
		in       translate.Input
		opts     translate.Options
		want     *model.Snapshot
		warnings []string
	}{
		"empty input": {
			want: snapshot(),
		},
		"nil entries are ignored": {
			in: translate.Input{
				Ingresses:      []*networkingv1.Ingress{nil},
				IngressClasses: []*networkingv1.IngressClass{nil},
				Services:       []*corev1.Service{nil},
				EndpointSlices: []*discoveryv1.EndpointSlice{nil},
				Secrets:        []*corev1.Secret{nil},
			},
			want: snapshot(),
		},
		"one route": {
			in: translate.Input{
				Ingresses:      []*networkingv1.Ingress{ingress("default", "a", rule("a.example.com", prefix("/", "web", 80)))},
				Services:       []*corev1.Service{web},
				EndpointSlices: []*discoveryv1.EndpointSlice{webEPs},
			},
			want: snapshot(host("a.example.com", wantRoute(model.PathPrefix, "/", webBE, "default", "a"))),
		},
		"balancer and timeouts from options": {
			in: translate.Input{
				Ingresses:      []*networkingv1.Ingress{ingress("default", "a", rule("a.example.com", prefix("/", "web", 80)))},
				Services:       []*corev1.Service{web},
				EndpointSlices: []*discoveryv1.EndpointSlice{webEPs},
			},
			opts: translate.Options{
				Balancer: model.BalancerLeastRequest,
				Timeouts: model.Timeouts{Connect: time.Second, Response: time.Minute},
			},
			want: snapshot(host("a.example.com", wantRoute(model.PathPrefix, "/", &model.Backend{
				Name: "default/web:80", Service: webBE.Service, Protocol: model.ProtocolHTTP,
				Balancer: model.BalancerLeastRequest, Endpoints: []string{"10.0.0.1:8080"},
				Timeouts: model.Timeouts{Connect: time.Second, Response: time.Minute},
			}, "default", "a"))),
		},
		"loopback endpoints refused by default": {
			in: translate.Input{
				Ingresses: []*networkingv1.Ingress{ingress("default", "a", rule("a.example.com", prefix("/", "web", 80)))},
				Services:  []*corev1.Service{web},
				EndpointSlices: []*discoveryv1.EndpointSlice{
					endpointSlice("default", "web-1", "web", discoveryv1.AddressTypeIPv4, "", 8080, "127.0.0.1"),
					endpointSlice("default", "web-2", "web", discoveryv1.AddressTypeIPv6, "", 8080, "::1"),
				},
			},
			want: snapshot(host("a.example.com", wantRoute(model.PathPrefix, "/", wantBackend("default", "web", "80"), "default", "a"))),
			warnings: []string{
				`EndpointSlice default/web-1: endpoints[0].addresses[0]: "127.0.0.1" is a loopback address (allowed in standalone mode only); endpoint ignored`,
				`EndpointSlice default/web-2: endpoints[0].addresses[0]: "::1" is a loopback address (allowed in standalone mode only); endpoint ignored`,
			},
		},
		"loopback endpoints allowed in standalone mode": {
			in: translate.Input{
				Ingresses: []*networkingv1.Ingress{ingress("default", "a", rule("a.example.com", prefix("/", "web", 80)))},
				Services:  []*corev1.Service{web},
				EndpointSlices: []*discoveryv1.EndpointSlice{
					endpointSlice("default", "web-1", "web", discoveryv1.AddressTypeIPv4, "", 8080, "127.0.0.1", "127.0.0.2"),
					endpointSlice("default", "web-2", "web", discoveryv1.AddressTypeIPv6, "", 8080, "::1"),
				},
			},
			opts: translate.Options{AllowLoopback: true},
			want: snapshot(host("a.example.com", wantRoute(model.PathPrefix, "/",
				wantBackend("default", "web", "80", "127.0.0.1:8080", "127.0.0.2:8080", "[::1]:8080"), "default", "a"))),
		},
		"address of the wrong family, FQDN slices and slices without the port": {
			in: translate.Input{
				Ingresses: []*networkingv1.Ingress{ingress("default", "a", rule("a.example.com", prefix("/", "web", 80)))},
				Services:  []*corev1.Service{web},
				EndpointSlices: []*discoveryv1.EndpointSlice{
					endpointSlice("default", "v4", "web", discoveryv1.AddressTypeIPv4, "", 8080, "fd00::1", "10.0.0.1"),
					endpointSlice("default", "fqdn", "web", discoveryv1.AddressTypeFQDN, "", 8080, "web.example.com"),
					endpointSlice("default", "other-port", "web", discoveryv1.AddressTypeIPv4, "metrics", 9090, "10.0.0.9"),
					endpointSlice("elsewhere", "same-name", "web", discoveryv1.AddressTypeIPv4, "", 8080, "10.9.9.9"),
				},
			},
			want: snapshot(host("a.example.com", wantRoute(model.PathPrefix, "/", webBE, "default", "a"))),
			warnings: []string{
				`EndpointSlice default/fqdn: addressType: "FQDN" is not supported (only IPv4 and IPv6 are); slice ignored`,
				`EndpointSlice default/v4: endpoints[0].addresses[0]: "fd00::1" is not an IPv4 address; endpoint ignored`,
			},
		},
		"rule without http and host-only tls make no virtual host": {
			in: translate.Input{
				Ingresses: []*networkingv1.Ingress{ingress("default", "a", rule("a.example.com"), tlsFor("", "b.example.com"))},
			},
			want: snapshot(),
		},
		"tls is a property of the host, across Ingresses, wildcards covering one label": {
			in: translate.Input{
				Ingresses: []*networkingv1.Ingress{
					ingress("default", "routes",
						rule("a.example.com", prefix("/", "web", 80)),
						rule("b.wild.example.com", prefix("/", "web", 80)),
						rule("c.d.wild.example.com", prefix("/", "web", 80)),
						rule("", prefix("/", "web", 80))),
					ingress("default", "certs", tlsFor("", "a.example.com", "*.wild.example.com")),
				},
				Services:       []*corev1.Service{web},
				EndpointSlices: []*discoveryv1.EndpointSlice{webEPs},
			},
			want: snapshot(
				host("", wantRoute(model.PathPrefix, "/", webBE, "default", "routes")),
				&model.VirtualHost{Name: "a.example.com", TLS: true, Routes: []*model.Route{wantRoute(model.PathPrefix, "/", webBE, "default", "routes")}},
				&model.VirtualHost{Name: "b.wild.example.com", TLS: true, Routes: []*model.Route{wantRoute(model.PathPrefix, "/", webBE, "default", "routes")}},
				host("c.d.wild.example.com", wantRoute(model.PathPrefix, "/", webBE, "default", "routes")),
			),
		},
		"an IngressClass object decides for its name over ClassNames": {
			in: translate.Input{
				IngressClasses: []*networkingv1.IngressClass{ingressClass("sluice", "example.com/other", false)},
				Ingresses:      []*networkingv1.Ingress{ingress("default", "a", rule("a.example.com", prefix("/", "web", 80)))},
			},
			want: snapshot(),
		},
		"custom controller name and class names": {
			in: translate.Input{
				IngressClasses: []*networkingv1.IngressClass{ingressClass("edge", "example.com/edge", false)},
				Ingresses: []*networkingv1.Ingress{
					ingress("default", "by-object", className("edge"), rule("a.example.com", prefix("/", "web", 80))),
					ingress("default", "by-name", className("public"), rule("b.example.com", prefix("/", "web", 80))),
					ingress("default", "default-name", rule("c.example.com", prefix("/", "web", 80))),
				},
				Services:       []*corev1.Service{web},
				EndpointSlices: []*discoveryv1.EndpointSlice{webEPs},
			},
			opts: translate.Options{ControllerName: "example.com/edge", ClassNames: []string{"public"}},
			want: snapshot(
				host("a.example.com", wantRoute(model.PathPrefix, "/", webBE, "default", "by-object")),
				host("b.example.com", wantRoute(model.PathPrefix, "/", webBE, "default", "by-name")),
			),
		},
		"empty ClassNames owns no name without an IngressClass": {
			in: translate.Input{
				Ingresses: []*networkingv1.Ingress{ingress("default", "a", rule("a.example.com", prefix("/", "web", 80)))},
			},
			opts: translate.Options{ClassNames: []string{}},
			want: snapshot(),
		},
		"an empty class name is no class": {
			in: translate.Input{
				Ingresses: []*networkingv1.Ingress{
					ingress("default", "field", func(ing *networkingv1.Ingress) { ing.Spec.IngressClassName = ptr("") },
						rule("a.example.com", prefix("/", "web", 80))),
					ingress("default", "annotation", className(""), annotation("kubernetes.io/ingress.class", ""),
						rule("b.example.com", prefix("/", "web", 80))),
				},
			},
			opts: translate.Options{ClassNames: []string{""}},
			want: snapshot(),
		},
		"no class and no default class is not ours": {
			in: translate.Input{
				IngressClasses: []*networkingv1.IngressClass{ingressClass("sluice", translate.ControllerName, false)},
				Ingresses:      []*networkingv1.Ingress{ingress("default", "a", className(""), rule("a.example.com", prefix("/", "web", 80)))},
			},
			want: snapshot(),
		},
		"the default class of another controller does not make it ours": {
			in: translate.Input{
				IngressClasses: []*networkingv1.IngressClass{ingressClass("nginx", "k8s.io/ingress-nginx", true)},
				Ingresses:      []*networkingv1.Ingress{ingress("default", "a", className(""), rule("a.example.com", prefix("/", "web", 80)))},
			},
			want: snapshot(),
		},
		"legacy annotation naming another class": {
			in: translate.Input{
				IngressClasses: []*networkingv1.IngressClass{ingressClass("sluice", translate.ControllerName, true)},
				Ingresses: []*networkingv1.Ingress{ingress("default", "a", className(""),
					annotation("kubernetes.io/ingress.class", "nginx"), rule("a.example.com", prefix("/", "web", 80)))},
			},
			want: snapshot(),
		},
		"default backend with a missing service answers 503": {
			in: translate.Input{
				Ingresses: []*networkingv1.Ingress{ingress("default", "a", defaultBackend("gone", 80))},
			},
			want: &model.Snapshot{Hosts: []*model.VirtualHost{}, DefaultBackend: wantBackend("default", "gone", "80")},
			warnings: []string{
				"Ingress default/a: spec.defaultBackend.service.name: Service default/gone not found; the route answers 503 until it exists",
			},
		},
		"invalid default backend is ignored": {
			in: translate.Input{
				Ingresses: []*networkingv1.Ingress{
					ingress("default", "a", created(1), func(ing *networkingv1.Ingress) {
						ing.Spec.DefaultBackend = &networkingv1.IngressBackend{}
					}),
					ingress("default", "b", created(2), defaultBackend("web", 80)),
				},
				Services:       []*corev1.Service{web},
				EndpointSlices: []*discoveryv1.EndpointSlice{webEPs},
			},
			want:     &model.Snapshot{Hosts: []*model.VirtualHost{}, DefaultBackend: webBE},
			warnings: []string{"Ingress default/a: spec.defaultBackend: service is required; default backend ignored"},
		},
		"invalid backend references": {
			in: translate.Input{
				Ingresses: []*networkingv1.Ingress{ingress("default", "a", rule("a.example.com",
					networkingv1.HTTPIngressPath{Path: "/both", PathType: ptr(networkingv1.PathTypePrefix), Backend: networkingv1.IngressBackend{
						Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Name: "http", Number: 80}}}},
					networkingv1.HTTPIngressPath{Path: "/none", PathType: ptr(networkingv1.PathTypePrefix), Backend: networkingv1.IngressBackend{
						Service: &networkingv1.IngressServiceBackend{Name: "web"}}},
					networkingv1.HTTPIngressPath{Path: "/noname", PathType: ptr(networkingv1.PathTypePrefix), Backend: networkingv1.IngressBackend{
						Service: &networkingv1.IngressServiceBackend{Port: networkingv1.ServiceBackendPort{Number: 80}}}},
					networkingv1.HTTPIngressPath{Path: "/range", PathType: ptr(networkingv1.PathTypePrefix), Backend: networkingv1.IngressBackend{
						Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Number: 70000}}}},
				))},
			},
			want: snapshot(),
			warnings: []string{
				"Ingress default/a: spec.rules[0].http.paths[0].backend.service.port: only one of name and number may be set; path ignored",
				"Ingress default/a: spec.rules[0].http.paths[1].backend.service.port: one of name and number is required; path ignored",
				"Ingress default/a: spec.rules[0].http.paths[2].backend.service.name: required; path ignored",
				"Ingress default/a: spec.rules[0].http.paths[3].backend.service.port.number: 70000 is not a port number; path ignored",
			},
		},
		"duplicate objects in the input: the first is used": {
			in: translate.Input{
				Ingresses: []*networkingv1.Ingress{
					ingress("default", "a", rule("a.example.com", prefix("/", "web", 80))),
					ingress("default", "a", rule("b.example.com", prefix("/", "web", 80))),
				},
				Services:       []*corev1.Service{web, service("default", "web")},
				EndpointSlices: []*discoveryv1.EndpointSlice{webEPs, webEPs},
			},
			want: snapshot(host("a.example.com", wantRoute(model.PathPrefix, "/", webBE, "default", "a"))),
			warnings: []string{
				"EndpointSlice default/web-1: defined more than once in the input; the first definition is used",
				"Ingress default/a: defined more than once in the input; the first definition is used",
				"Service default/web: defined more than once in the input; the first definition is used",
			},
		},
		"hosts are lowercased, so case variants conflict": {
			in: translate.Input{
				Ingresses: []*networkingv1.Ingress{
					ingress("default", "a", created(1), rule("A.Example.com", prefix("/", "web", 80))),
					ingress("default", "b", created(2), rule("a.example.COM", prefix("/", "web", 80))),
				},
				Services:       []*corev1.Service{web},
				EndpointSlices: []*discoveryv1.EndpointSlice{webEPs},
			},
			want: snapshot(host("a.example.com", wantRoute(model.PathPrefix, "/", webBE, "default", "a"))),
			warnings: []string{
				`Ingress default/b: spec.rules[0].http.paths[0]: host "a.example.com" Prefix path "/" is already routed by Ingress default/a (the oldest Ingress wins); path ignored`,
			},
		},
		"exact beats prefix on a tie, longer beats shorter": {
			in: translate.Input{
				Ingresses: []*networkingv1.Ingress{ingress("default", "a", rule("a.example.com",
					prefix("/a/", "web", 80),
					path(networkingv1.PathTypeExact, "/a", "web", 80),
					prefix("/ab", "web", 80),
					prefix("/", "web", 80),
					path(networkingv1.PathTypeExact, "/", "web", 80),
				))},
				Services:       []*corev1.Service{web},
				EndpointSlices: []*discoveryv1.EndpointSlice{webEPs},
			},
			want: snapshot(host("a.example.com",
				wantRoute(model.PathPrefix, "/ab", webBE, "default", "a"),
				wantRoute(model.PathExact, "/a", webBE, "default", "a"),
				wantRoute(model.PathPrefix, "/a/", webBE, "default", "a"),
				wantRoute(model.PathExact, "/", webBE, "default", "a"),
				wantRoute(model.PathPrefix, "/", webBE, "default", "a"),
			)),
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if tt.opts.Now.IsZero() {
				tt.opts.Now = now
			}
			got, warnings := translate.Translate(tt.in, tt.opts)
			assertSnapshot(t, got, tt.want)
			assertWarnings(t, warnings, tt.warnings)
		})
	}
}

func ptr[T any](v T) *T { return &v }

func assertSnapshot(t *testing.T, got, want *model.Snapshot) {
	t.Helper()
	g, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	w, err := json.MarshalIndent(want, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if string(g) != string(w) {
		t.Errorf("snapshot differs:\n%s\ngot:\n%s", lineDiff(string(w), string(g)), g)
	}
}

func assertWarnings(t *testing.T, got []model.Warning, want []string) {
	t.Helper()
	var gs []string
	for _, w := range got {
		gs = append(gs, w.String())
	}
	if len(gs) != len(want) {
		t.Errorf("got %d warnings, want %d:\n got: %q\nwant: %q", len(gs), len(want), gs, want)
		return
	}
	for i := range gs {
		if gs[i] != want[i] {
			t.Errorf("warning %d:\n got: %s\nwant: %s", i, gs[i], want[i])
		}
	}
}
