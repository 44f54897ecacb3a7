//go:build !wasip1

package sdk_test

import (
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/sluicegw/sluice/sdk"
	"github.com/sluicegw/sluice/sdk/sdktest"
)

// apiKey answers 401 without an X-Api-Key header and tells the upstream
// which key called. In a filter's main package it is registered with
// sdk.Handle from init.
type apiKey struct{}

func (apiKey) HandleRequest(req sdk.Request, resp sdk.Response) (next bool) {
	key := req.Header().Get("X-Api-Key")
	if key == "" {
		resp.SetStatusCode(401)
		resp.Body().WriteString("api key required\n")
		return false
	}
	req.Header().Del("X-Api-Key")
	req.Header().Set("X-Caller", key[:4])
	return true
}

// A filter's logic runs natively through sdktest: what the client got and
// what the upstream received.
func Example() {
	h := sdktest.New(apiKey{}, sdktest.Options{})

	res := h.Do(httptest.NewRequest("GET", "/", nil))
	fmt.Printf("%d %q\n", res.Status, res.Body)

	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-Api-Key", "k123-secret")
	res = h.Do(r)
	fmt.Println(res.Status, res.Upstream.Header.Get("X-Caller"), res.Upstream.Header.Get("X-Api-Key") == "")
	// Output:
	// 401 "api key required\n"
	// 200 k123 true
}

type limited struct{}

func (limited) HandleRequest(req sdk.Request, resp sdk.Response) (next bool) {
	d, err := sdk.RateTake("client:"+req.SourceAddr(), sdk.Limit{Rate: 1, Period: time.Minute, Burst: 1})
	if err == nil && !d.Allowed {
		resp.SetStatusCode(429)
		return false
	}
	return true
}

// RateTake takes a token from a bucket the gateway keeps for the filter.
func ExampleRateTake() {
	h := sdktest.New(limited{}, sdktest.Options{})
	for range 2 {
		fmt.Println(h.Do(httptest.NewRequest("GET", "/", nil)).Status)
	}
	// Output:
	// 200
	// 429
}
