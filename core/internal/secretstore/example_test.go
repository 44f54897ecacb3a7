package secretstore_test

import (
	"fmt"
	"time"

	"github.com/caddyserver/certmagic"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/sluicegw/sluice/core/internal/secretstore"
)

// A Storage for certmagic: every replica that uses the same namespace and
// label shares certificates, ACME accounts and locks.
func ExampleNew() {
	client := fake.NewClientset() // in the gateway: the cluster-mode client
	storage, err := secretstore.New(secretstore.Options{
		Client:        client,
		Namespace:     "sluice",
		Label:         secretstore.DefaultLabel,
		Identity:      "sluice-7d9f-abcde", // the pod name
		LeaseDuration: 20 * time.Second,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	template := certmagic.Config{Storage: storage} // for certmagic.New(cache, template)
	_ = template
	fmt.Println(storage)
	fmt.Println(secretstore.SecretName("certificates/acme/example.com/example.com.crt"))
	// Output:
	// SecretStorage:sluice/sluice.io/storage=certmagic
	// sluice-storage-ae43fe7bcb858c63cb69fe0900250848e28666c9
}
