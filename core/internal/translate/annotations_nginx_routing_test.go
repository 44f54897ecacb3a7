package translate_test

import (
	"encoding/json"
	"maps"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/core/internal/translate"
)

// routingInput is a main Ingress on a.test "/" (service web) and, when
// canary is set, a canary Ingress on the same path (service canary); anns
// go on the canary when there is one, else on the main Ingress.
func routingInput(anns map[string]string, canary bool, paths ...networkingv1.HTTPIngressPath) translate.Input {
	if paths == nil {
		paths = []networkingv1.HTTPIngressPath{prefix("/", "web", 80)}
	}
	var mainOpts, canaryOpts []ingressOpt
	for k, v := range anns {
		if canary {
			canaryOpts = append(canaryOpts, annotation(k, v))
		} else {
			mainOpts = append(mainOpts, annotation(k, v))
		}
	}
	in := translate.Input{Ingresses: []*networkingv1.Ingress{ingress("ns", "main", append(mainOpts, rule("a.test", paths...))...)}}
	if canary {
		in.Ingresses = append(in.Ingresses, ingress("ns", "canary", append(canaryOpts, rule("a.test", prefix("/", "canary", 80)))...))
	}
	return in
}

// annotationWarnings are the warnings about annotations and canaries (not
// about the absent Services).
func annotationWarnings(ws []model.Warning) []string {
	var out []string
	for _, w := range ws {
		if strings.Contains(w.Message, "annotations[") || strings.Contains(w.Message, "canary:") {
			out = append(out, w.String())
		}
	}
	return out
}

// TestRoutingTwins: every ingress-nginx routing annotation gives exactly
// the snapshot of its sluice.io twin, without a warning.
func TestRoutingTwins(t *testing.T) {
	for name, tc := range map[string]struct {
		anns   map[string]string
		canary bool
	}{
		"use-regex":             {anns: map[string]string{"use-regex": "true"}},
		"rewrite-target":        {anns: map[string]string{"rewrite-target": "/x/$1"}},
		"permanent-redirect":    {anns: map[string]string{"permanent-redirect": "https://n.example/", "permanent-redirect-code": "308"}},
		"temporal-redirect":     {anns: map[string]string{"temporal-redirect": "http://n.example/a?b=c", "temporal-redirect-code": "303"}},
		"app-root":              {anns: map[string]string{"app-root": "/app"}},
		"cors":                  {anns: map[string]string{"enable-cors": "true", "cors-allow-origin": "https://a.example,https://*.b.example", "cors-allow-methods": "GET", "cors-allow-headers": "X-A", "cors-expose-headers": "*", "cors-allow-credentials": "true", "cors-max-age": "60"}},
		"canary weight":         {anns: map[string]string{"canary": "true", "canary-weight": "5", "canary-weight-total": "50"}, canary: true},
		"canary header value":   {anns: map[string]string{"canary": "true", "canary-by-header": "X-C", "canary-by-header-value": "yes"}, canary: true},
		"canary header pattern": {anns: map[string]string{"canary": "true", "canary-by-header": "X-C", "canary-by-header-pattern": "^b"}, canary: true},
		"canary cookie":         {anns: map[string]string{"canary": "true", "canary-by-cookie": "c"}, canary: true},
	} {
		t.Run(name, func(t *testing.T) {
			var out [2]string
			for i, p := range []string{translate.NginxPrefix, "sluice.io/"} {
				anns := map[string]string{}
				for k, v := range tc.anns {
					anns[p+k] = v
				}
				snap, warnings := translate.Translate(routingInput(anns, tc.canary), translate.Options{})
				for _, w := range annotationWarnings(warnings) {
					t.Errorf("%s: %s", p, w)
				}
				if len(snap.Hosts) != 1 || len(snap.Hosts[0].Routes) != 1 {
					t.Fatalf("%s: hosts %+v", p, snap.Hosts)
				}
				js, err := json.Marshal(snap)
				if err != nil {
					t.Fatal(err)
				}
				out[i] = string(js)
			}
			if out[0] != out[1] {
				t.Fatalf("ingress-nginx and sluice.io differ:\n%s\n%s", out[0], out[1])
			}
		})
	}
}

// TestRoutingModel checks the route the annotations produce, field by
// field, where the golden files show whole snapshots.
func TestRoutingModel(t *testing.T) {
	n := translate.NginxPrefix
	in := routingInput(map[string]string{n + "rewrite-target": "/$2", n + "enable-cors": "true"}, false,
		path(networkingv1.PathTypeImplementationSpecific, "/svc(/|$)(.*)", "web", 80), path(networkingv1.PathTypeExact, "/Exact", "web", 80))
	snap, warnings := translate.Translate(in, translate.Options{})
	if ws := annotationWarnings(warnings); ws != nil {
		t.Errorf("warnings: %v", ws)
	}
	routes := snap.Hosts[0].Routes
	if len(routes) != 2 {
		t.Fatalf("routes: %+v", routes)
	}
	for _, r := range routes {
		if r.PathType != model.PathRegex || r.Rewrite != "/$2" || r.CORS == nil || r.CORS.AllowCredentials || r.CORS.MaxAge != 1728000 {
			t.Errorf("route %s %q: %+v", r.PathType, r.Path, r)
		}
	}
	compiles(t, "rewrite", snap)
}

// FuzzRoutingAnnotations: whatever the routing annotations and the path,
// translate does not panic nor modify its input, route.Compile accepts
// the snapshot, and the canary Ingress never routes by itself.
func FuzzRoutingAnnotations(f *testing.F) {
	f.Add("/a(/|$)(.*)", "/$2", "true", "https://*.a.example", "10", "^v[0-9]", "X-C", "/app")
	f.Add("/(", "$x", "maybe", "*", "-1", "(?=", "a b", "app")
	f.Add("", "", "", "", "", "", "", "")
	f.Fuzz(func(t *testing.T, p, rewrite, regex, origin, weight, pattern, header, appRoot string) {
		n := translate.NginxPrefix
		main := routingInput(map[string]string{
			n + "rewrite-target": rewrite, n + "use-regex": regex, n + "enable-cors": "true",
			n + "cors-allow-origin": origin, n + "app-root": appRoot,
		}, false, path(networkingv1.PathTypeImplementationSpecific, p, "web", 80))
		canary := routingInput(map[string]string{
			n + "canary": "true", n + "canary-weight": weight, n + "canary-by-header": header,
			n + "canary-by-header-pattern": pattern,
		}, true)
		in := translate.Input{Ingresses: []*networkingv1.Ingress{main.Ingresses[0], canary.Ingresses[1]}}
		before := maps.Clone(in.Ingresses[0].Annotations)
		snap, _ := translate.Translate(in, translate.Options{})
		if !maps.Equal(before, in.Ingresses[0].Annotations) {
			t.Fatal("input modified")
		}
		for _, vh := range snap.Hosts {
			for _, r := range vh.Routes {
				if r.Source.Name != "main" {
					t.Fatalf("a route from %s", r.Source)
				}
			}
		}
		compiles(t, "fuzz", snap)
	})
}

// TestCanaryOtherNamespace: a canary Ingress never takes traffic from a
// route of another namespace's Ingress (its weight would let any
// namespace divert a host it does not own); it gets a warning instead.
func TestCanaryOtherNamespace(t *testing.T) {
	n := translate.NginxPrefix
	in := routingInput(map[string]string{n + "canary": "true", n + "canary-weight": "100"}, true)
	in.Ingresses[1].Namespace = "other"
	snap, warnings := translate.Translate(in, translate.Options{})
	if len(snap.Hosts) != 1 || len(snap.Hosts[0].Routes) != 1 {
		t.Fatalf("hosts %+v", snap.Hosts)
	}
	if c := snap.Hosts[0].Routes[0].Canary; c != nil {
		t.Errorf("the route of ns/main got the canary %s", c.Source)
	}
	ws := annotationWarnings(warnings)
	want := `spec.rules[0].http.paths[0]: canary: host "a.test" path "/" is routed by Ingress ns/main of another namespace; ignored`
	if len(ws) != 1 || !strings.Contains(ws[0], want) || !strings.Contains(ws[0], "other/canary") {
		t.Errorf("warnings %q, want one of other/canary with %q", ws, want)
	}
}
