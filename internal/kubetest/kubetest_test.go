package kubetest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestClusterAndNetns starts the control plane, stores an EndpointSlice
// whose address is inside a test namespace, and reaches a server there.
func TestClusterAndNetns(t *testing.T) {
	c := Start(t)
	ns := NewNetns(t)
	l, err := ns.Listen(8080)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "inside")
	})}
	go srv.Serve(l)
	defer srv.Close()

	ctx := context.Background()
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: "web-1", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{ns.IP}}},
	}
	if _, err := c.Client.DiscoveryV1().EndpointSlices("default").Create(ctx, es, metav1.CreateOptions{}); err != nil {
		t.Fatalf("the API server refused a namespace address: %v", err)
	}
	resp, err := http.Get("http://" + l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "inside" {
		t.Fatalf("got %q from the server in the namespace", body)
	}

	// A restarted API server still has the object.
	c.StopAPIServer()
	c.StartAPIServer()
	if _, err := c.Client.DiscoveryV1().EndpointSlices("default").Get(ctx, "web-1", metav1.GetOptions{}); err != nil {
		t.Fatalf("after a restart: %v", err)
	}
}
