// Command benchplugin is the native plugin filter of the benchmark: the
// smallest plugin that does work on every request (it sets one request
// header), so the measured cost is the gateway ↔ plugin round trip.
package main

import (
	"context"
	"net/http"

	"github.com/sluicegw/sluice/plugins/sdk"
)

type filter struct{ sdk.Base }

// HandleRequest sets X-Bench-Plugin: 1 on every request.
func (filter) HandleRequest(context.Context, *sdk.Request) (*sdk.RequestAction, error) {
	return &sdk.RequestAction{SetHeader: http.Header{"X-Bench-Plugin": {"1"}}}, nil
}

func main() { sdk.Serve(filter{}) }
