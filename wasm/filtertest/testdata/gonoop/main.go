// Command gonoop is the benchmark's no-op standard-Go filter: it passes
// every request on unchanged (and reports its memory size when it grows).
package main

import "github.com/sluicegw/sluice/sdk"

type filter struct{}

func (filter) HandleRequest(sdk.Request, sdk.Response) bool {
	reportMemory()
	return true
}

func init() { sdk.Handle(filter{}) }

func main() {}
