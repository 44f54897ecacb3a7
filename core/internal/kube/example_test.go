package kube_test

import (
	"context"
	"fmt"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/sluicegw/sluice/core/internal/kube"
	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/core/internal/translate"
)

// A Source delivers the cluster's objects once its caches synced, then
// after each batch of changes. Here the client is client-go's fake; the
// gateway passes kube.NewClient's.
func ExampleSource() {
	client := fake.NewClientset(&networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}})
	src, err := kube.New(kube.Options{Client: client})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	err = src.Run(ctx, func(in translate.Input, _ []model.Warning) {
		fmt.Printf("first delivery: %d Ingress, %s/%s\n", len(in.Ingresses), in.Ingresses[0].Namespace, in.Ingresses[0].Name)
		fmt.Printf("degraded: %q\n", src.Degraded())
		cancel() // a gateway keeps running; the example stops here
	})
	fmt.Println("Run returned", err)
	// Output:
	// first delivery: 1 Ingress, shop/web
	// degraded: ""
	// Run returned <nil>
}
