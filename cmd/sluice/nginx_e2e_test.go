package main

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// routingIngress is an Ingress with annotations ("key: value" lines) and
// rules (YAML under spec.rules, indented two spaces).
func routingIngress(name string, annotations []string, rules string) string {
	var a strings.Builder
	for _, l := range annotations {
		a.WriteString("    " + l + "\n")
	}
	return fmt.Sprintf(`apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: %s
  namespace: default
  creationTimestamp: "2026-01-01T00:00:00Z"
  annotations:
%sspec:
  ingressClassName: sluice
  rules:
%s`, name, a.String(), rules)
}

// TestNginxRouting runs the real gateway in standalone mode with
// ingress-nginx routing annotations at once: a rewrite with regex groups,
// CORS, a permanent redirect, app-root, a weighted canary with a header
// override, and an invalid regex that is warned about while the rest
// serves.
func TestNginxRouting(t *testing.T) {
	mainBe, canaryBe, apiBe := startBackend(t, "main", nil), startBackend(t, "canary", nil), startBackend(t, "api", nil)
	dir := t.TempDir()
	const n = "nginx.ingress.kubernetes.io/"
	writeFile(t, filepath.Join(dir, "services.yaml"), service("svc-main", mainBe)+"---\n"+service("svc-canary", canaryBe)+"---\n"+service("svc-api", apiBe))
	writeFile(t, filepath.Join(dir, "api.yaml"), routingIngress("api", []string{
		n + `rewrite-target: /$2`,
		n + `enable-cors: "true"`,
		n + `cors-allow-origin: "https://app.test"`,
	}, `  - host: shop.test
    http:
      paths:
      - {path: "/api(/|$)(.*)", pathType: ImplementationSpecific, backend: {service: {name: svc-api, port: {number: 80}}}}
`))
	writeFile(t, filepath.Join(dir, "web.yaml"), routingIngress("web", nil, `  - host: shop.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: svc-main, port: {number: 80}}}}
`))
	writeFile(t, filepath.Join(dir, "web-canary.yaml"), routingIngress("web-canary", []string{
		n + `canary: "true"`,
		n + `canary-weight: "30"`,
		n + `canary-by-header: X-Canary`,
	}, `  - host: shop.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: svc-canary, port: {number: 80}}}}
`))
	writeFile(t, filepath.Join(dir, "old.yaml"), routingIngress("old", []string{n + `permanent-redirect: https://shop.test/new`}, `  - host: old.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: svc-main, port: {number: 80}}}}
`))
	writeFile(t, filepath.Join(dir, "root.yaml"), routingIngress("root", []string{n + `app-root: /home`}, `  - host: root.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: svc-main, port: {number: 80}}}}
`))
	writeFile(t, filepath.Join(dir, "bad.yaml"), routingIngress("bad", []string{n + `use-regex: "true"`}, `  - host: bad.test
    http:
      paths:
      - {path: "/broken(", pathType: ImplementationSpecific, backend: {service: {name: svc-main, port: {number: 80}}}}
      - {path: "/ok/.*", pathType: ImplementationSpecific, backend: {service: {name: svc-api, port: {number: 80}}}}
`))
	g := startGateway(t, "--manifests", dir)
	base := "http://" + g.addr("http")
	client := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	send := func(method, host, path string, hdr ...string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s%s: %v", method, host, path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}

	g.waitLog(t, "Ingress default/bad", `/broken(`, `use-regex`)

	t.Run("rewrite", func(t *testing.T) {
		r := send("GET", "shop.test", "/API/users/7?x=1")
		if r.StatusCode != 200 || r.Header.Get("X-Backend") != "api" || r.Header.Get("X-Seen-Path") != "/users/7" {
			t.Fatalf("GET /API/users/7: %d backend %q path %q", r.StatusCode, r.Header.Get("X-Backend"), r.Header.Get("X-Seen-Path"))
		}
		r = send("GET", "bad.test", "/ok/anything")
		if r.StatusCode != 200 || r.Header.Get("X-Backend") != "api" {
			t.Fatalf("the valid regex path beside an invalid one: %d %q", r.StatusCode, r.Header.Get("X-Backend"))
		}
	})
	t.Run("redirects", func(t *testing.T) {
		if r := send("GET", "old.test", "/anything"); r.StatusCode != 301 || r.Header.Get("Location") != "https://shop.test/new" {
			t.Errorf("permanent-redirect: %d %q", r.StatusCode, r.Header.Get("Location"))
		}
		if r := send("GET", "root.test", "/"); r.StatusCode != 302 || r.Header.Get("Location") != "http://root.test/home" {
			t.Errorf("app-root: %d %q", r.StatusCode, r.Header.Get("Location"))
		}
		if r := send("GET", "root.test", "/home"); r.StatusCode != 200 || r.Header.Get("X-Backend") != "main" {
			t.Errorf("app-root target: %d %q", r.StatusCode, r.Header.Get("X-Backend"))
		}
	})
	t.Run("cors", func(t *testing.T) {
		r := send("OPTIONS", "shop.test", "/api/x", "Origin", "https://app.test", "Access-Control-Request-Method", "PUT")
		if r.StatusCode != 204 || r.Header.Get("Access-Control-Allow-Origin") != "https://app.test" || r.Header.Get("X-Backend") != "" ||
			r.Header.Get("Access-Control-Allow-Methods") != "GET, PUT, POST, DELETE, PATCH, OPTIONS" {
			t.Errorf("preflight: %d %v", r.StatusCode, r.Header)
		}
		r = send("GET", "shop.test", "/api/x", "Origin", "https://app.test")
		if r.StatusCode != 200 || r.Header.Get("Access-Control-Allow-Origin") != "https://app.test" || r.Header.Get("Access-Control-Allow-Credentials") != "true" {
			t.Errorf("simple request: %d %v", r.StatusCode, r.Header)
		}
		r = send("OPTIONS", "shop.test", "/api/x", "Origin", "https://evil.test")
		if r.StatusCode != 200 || r.Header.Get("X-Backend") != "api" || r.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("OPTIONS from another origin: %d %v (want proxied, no CORS headers)", r.StatusCode, r.Header)
		}
	})
	t.Run("canary", func(t *testing.T) {
		const total = 400
		canary := 0
		for range total {
			switch b := send("GET", "shop.test", "/").Header.Get("X-Backend"); b {
			case "canary":
				canary++
			case "main":
			default:
				t.Fatalf("GET shop.test/: backend %q", b)
			}
		}
		// Weight 30 of 100: expect 120, standard deviation 9.2; the bounds
		// are more than 5 deviations away.
		if canary < 73 || canary > 167 {
			t.Errorf("canary got %d of %d requests, want about 120", canary, total)
		}
		for _, tc := range []struct{ value, want string }{{"always", "canary"}, {"never", "main"}} {
			for range 20 {
				if b := send("GET", "shop.test", "/", "X-Canary", tc.value).Header.Get("X-Backend"); b != tc.want {
					t.Fatalf("X-Canary: %s went to %q", tc.value, b)
				}
			}
		}
	})
}
