package manifest_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sluicegw/sluice/core/internal/manifest"
	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/core/internal/translate"
)

// Load reads a folder once; problems with single documents are warnings.
func ExampleLoad() {
	in, warnings, err := manifest.Load("testdata/mixed")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(in.Ingresses), "ingress,", len(in.Services), "service,", len(warnings), "warnings")
	// Output:
	// 1 ingress, 1 service, 5 warnings
}

// Watch delivers the folder's contents first, then again after each change,
// until its context is done.
func ExampleWatch() {
	dir, err := os.MkdirTemp("", "manifests")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	states := make(chan int, 10)
	done := make(chan error, 1)
	go func() {
		done <- manifest.Watch(ctx, dir, 10*time.Millisecond, func(in translate.Input, _ []model.Warning) {
			states <- len(in.Services)
		})
	}()
	fmt.Println("services:", <-states)
	svc := "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n"
	if err := os.WriteFile(filepath.Join(dir, "web.yaml"), []byte(svc), 0o644); err != nil {
		fmt.Println(err)
		return
	}
	for n := range states {
		if n == 1 {
			fmt.Println("services:", n)
			break
		}
	}
	cancel()
	fmt.Println("Watch returned:", <-done)
	// Output:
	// services: 0
	// services: 1
	// Watch returned: <nil>
}
