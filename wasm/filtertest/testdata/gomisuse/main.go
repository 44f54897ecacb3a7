// Command gomisuse is a standard-Go filter that misuses the SDK, for the
// tests of its guards: with X-Spawn it starts a goroutine (the SDK warns
// once), and with GOMISUSE_NOHANDLER set in its environment it registers
// no handler (the SDK answers 500 and logs why).
package main

import (
	"os"

	"github.com/sluicegw/sluice/sdk"
)

type filter struct{}

func (filter) HandleRequest(req sdk.Request, _ sdk.Response) bool {
	if req.Header().Get("X-Spawn") != "" {
		go func() { select {} }()
	}
	return true
}

func init() {
	if os.Getenv("GOMISUSE_NOHANDLER") == "" {
		sdk.Handle(filter{})
	}
}

func main() {}
