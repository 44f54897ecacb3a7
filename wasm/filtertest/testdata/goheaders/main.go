// Command goheaders is the benchmark's standard-Go header filter: 3
// request header reads and 1 request header set, like wasm/testdata's
// headers.wat (and it reports its memory size when it grows).
package main

import "github.com/sluicegw/sluice/sdk"

type filter struct{}

func (filter) HandleRequest(req sdk.Request, _ sdk.Response) bool {
	h := req.Header()
	n := len(h.Get("Accept")) + len(h.Get("User-Agent")) + len(h.Get("X-Request-Id"))
	if n > 0 {
		h.Set("X-Filtered", "1")
	}
	reportMemory()
	return true
}

func init() { sdk.Handle(filter{}) }

func main() {}
