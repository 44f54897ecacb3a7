//go:build wasip1

package sdk

import (
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/sluicegw/sluice/sdk/internal/abi"
)

// DefaultMemoryLimit is the soft limit of the Go heap the SDK sets in the
// guest when the host's environment sets no GOMEMLIMIT (see init).
const DefaultMemoryLimit = 4 << 20

// init tunes the Go runtime for a guest that lives in a pool and answers
// many short calls (RATIONALE.sdk.md "Why a guest memory limit?"): the
// host sets GOGC=25 in the environment by default; the SDK adds a soft
// memory limit so that linear memory, which never shrinks, stays bounded
// even when a host runs the guest with another GOGC.
func init() {
	if _, set := syscall.Getenv("GOMEMLIMIT"); !set {
		debug.SetMemoryLimit(DefaultMemoryLimit)
	}
}

// goroutines is the count after the first call; more later means the
// filter started goroutines (warned once).
var goroutines, warned = 0, false

func checkGoroutines() {
	n := runtime.NumGoroutine()
	switch {
	case goroutines == 0:
		goroutines = n
	case n > goroutines && !warned:
		warned = true
		abi.Log(int32(LogWarn), "sluice sdk: the filter started goroutines; they only run during calls and delay later requests")
	}
}

//go:wasmexport handle_request
func handleRequest() uint64 {
	if registered == nil {
		abi.Log(int32(LogError), "sluice sdk: no handler: call sdk.Handle from an init function")
		abi.SetStatusCode(500)
		return 0
	}
	next := registered.HandleRequest(Request{}, Response{})
	checkGoroutines()
	if next {
		return 1
	}
	return 0
}

//go:wasmexport handle_response
func handleResponse(reqCtx uint32, isError uint32) {
	if registeredResp != nil {
		registeredResp.HandleResponse(Request{}, Response{}, isError == 1)
		checkGoroutines()
	}
}
