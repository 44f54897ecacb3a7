package filters_test

import (
	"fmt"

	"github.com/sluicegw/sluice/filters"
)

// The gateway resolves "- name: ratelimit" (or "module: builtin:ratelimit")
// to the embedded module, after checking the route's config.
func Example() {
	fmt.Println(filters.Names())
	module, ok := filters.Module("ratelimit")
	fmt.Println(ok, string(module[:4]) == "\x00asm")
	fmt.Println(filters.Validate("ratelimit", []byte(`{"rate":10,"burst":20,"key":"client_ip"}`)))
	fmt.Println(filters.Validate("ratelimit", []byte(`{"limits":[{"rate":10,"period":"soon"}]}`)))
	// Output:
	// [header-policy mtls-identity ratelimit]
	// true true
	// <nil>
	// config: limits[0].period: "soon": want a duration of at least 1ms, e.g. 1s or 1m
}
