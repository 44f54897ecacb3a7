//go:build wasip1

package sdk

import (
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/sluicegw/sluice/sdk/internal/abi"
)

// Runtime settings the SDK applies in init when the host's environment
// does not set them (see RATIONALE.md, "Why does the SDK set GOGC and
// a memory limit?"). Sluice sets GOGC=25 itself; other http-wasm hosts
// may set nothing.
const (
	// DefaultGCPercent is the GOGC of a guest whose environment has none.
	DefaultGCPercent = 25
	// DefaultMemoryLimit is the soft limit of the Go runtime's memory
	// when the environment sets no GOMEMLIMIT.
	DefaultMemoryLimit = 4 << 20
)

// init bounds linear memory, which never shrinks: a pooled guest answers
// many short calls, and the heap the Go runtime grows to is kept for the
// instance's life.
func init() {
	if _, set := syscall.Getenv("GOGC"); !set {
		debug.SetGCPercent(DefaultGCPercent)
	}
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
