package filtertest_test

import (
	"fmt"
	"net/http/httptest"

	"github.com/sluicegw/sluice/wasm/filtertest"
)

// A filter is tested by loading its .wasm and sending requests through it;
// the result says what the client and the upstream saw. This guest
// answers 403 itself, so the upstream never sees the request.
func Example() {
	h, err := filtertest.New("../testdata/deny.wasm", filtertest.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer h.Close()

	res := h.Do(httptest.NewRequest("GET", "/", nil))
	fmt.Printf("%d %q upstream called: %v\n", res.Status, res.Body, res.Next)
	// Output: 403 "forbidden\n" upstream called: false
}
