package upstream_test

import (
	"fmt"

	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/core/internal/upstream"
)

func ExampleSet() {
	pools := upstream.NewSet(upstream.Options{})
	snap := &model.Snapshot{DefaultBackend: &model.Backend{
		Name:      "default/web:80",
		Balancer:  model.BalancerRoundRobin,
		Endpoints: []string{"10.0.0.1:8080", "10.0.0.2:8080"},
	}}
	p := pools.Sync(snap)["default/web:80"]

	e := p.Pick(nil)
	fmt.Println("picked", e.Addr())
	p.Failed(e) // connection refused: ejected for Options.EjectBase
	e.Done()

	// Retry elsewhere; the ejected endpoint is skipped from now on.
	e = p.Pick(nil)
	fmt.Println("picked", e.Addr())
	e.Done()

	// EndpointSlice fast path: the same pool, new endpoints.
	pools.SetEndpoints("default/web:80", []string{"10.0.0.2:8080", "10.0.0.3:8080"})
	fmt.Println(p.Len(), "endpoints")
	// Output:
	// picked 10.0.0.1:8080
	// picked 10.0.0.2:8080
	// 2 endpoints
}
