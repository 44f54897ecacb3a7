package manifest

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkDecode decodes a 1,000-document file (an Ingress, a Service and
// an EndpointSlice per application, 333 applications): the cost of a
// standalone reload. Not a request path, measured to keep reloads cheap.
func BenchmarkDecode(b *testing.B) {
	var sb strings.Builder
	for i := range 333 {
		fmt.Fprintf(&sb, `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: app-%[1]d}
spec:
  ingressClassName: sluice
  rules:
    - host: app-%[1]d.example.com
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: app-%[1]d, port: {number: 80}}}}
---
apiVersion: v1
kind: Service
metadata: {name: app-%[1]d}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: app-%[1]d-1, labels: {kubernetes.io/service-name: app-%[1]d}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints: [{addresses: [10.0.%[2]d.%[3]d]}]
---
`, i, i/256, i%256)
	}
	data := []byte(sb.String())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		in, warnings := Decode("bench.yaml", data)
		if len(in.Ingresses) != 333 || len(warnings) != 0 {
			b.Fatalf("got %d ingresses and warnings %v", len(in.Ingresses), warnings)
		}
	}
}
