package translate_test

import (
	"fmt"

	"github.com/sluicegw/sluice/core/internal/manifest"
	"github.com/sluicegw/sluice/core/internal/translate"
)

// Translate turns objects (here decoded from a manifest, as standalone mode
// does) into a Snapshot and warnings.
func ExampleTranslate() {
	in, _ := manifest.Decode("example.yaml", []byte(`
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  ingressClassName: sluice
  rules:
    - host: www.example.com
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
          - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {ports: [{port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{port: 8080}]
endpoints: [{addresses: [127.0.0.1]}]
`))
	snap, warnings := translate.Translate(in, translate.Options{AllowLoopback: true})
	for _, h := range snap.Hosts {
		for _, r := range h.Routes {
			fmt.Println(h.Name, r.PathType, r.Path, "->", r.Backend.Name, r.Backend.Endpoints)
		}
	}
	for _, w := range warnings {
		fmt.Println("warning:", w)
	}
	// Output:
	// www.example.com Prefix /api -> default/api:80 []
	// www.example.com Prefix / -> default/web:80 [127.0.0.1:8080]
	// warning: Ingress default/web: spec.rules[0].http.paths[1].backend.service.name: Service default/api not found; the route answers 503 until it exists
}
