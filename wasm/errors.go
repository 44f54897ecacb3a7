package wasm

import (
	"errors"
	"fmt"
	"strings"
)

// Failure classifies why a filter could not handle a request.
type Failure int

const (
	FailureTrap     Failure = iota + 1 // the guest trapped (unreachable, bad pointer, host-function error, exit)
	FailureDeadline                    // a call exceeded the filter's per-call deadline
	FailureMemory                      // the guest trapped at its memory cap
	FailureBusy                        // no instance became available in time
	FailureClosed                      // the filter was closed (replaced)
)

func (f Failure) String() string {
	switch f {
	case FailureTrap:
		return "trap"
	case FailureDeadline:
		return "deadline exceeded"
	case FailureMemory:
		return "memory cap exceeded"
	case FailureBusy:
		return "no instance available"
	case FailureClosed:
		return "filter closed"
	}
	return fmt.Sprintf("failure(%d)", int(f))
}

// FilterError is the error of a filter call: it names the filter, the
// phase (instantiate, handle_request, handle_response, acquire) and the
// kind of failure. Unwrap returns the underlying wazero or host error.
type FilterError struct {
	Filter string
	Phase  string
	Kind   Failure
	Err    error
}

func (e *FilterError) Error() string {
	msg := ""
	if e.Err != nil {
		// wazero appends a multi-line wasm stack trace; keep the first line.
		msg, _, _ = strings.Cut(e.Err.Error(), "\n")
		msg = ": " + msg
	}
	return fmt.Sprintf("filter %s: %s: %s%s", e.Filter, e.Phase, e.Kind, msg)
}

func (e *FilterError) Unwrap() error { return e.Err }

// errGuest is the error a host function panics with to trap the calling
// guest: wazero recovers it and returns it from the guest call.
type errGuest struct {
	fn  string // e.g. "http_handler.get_uri"
	msg string
}

func (e *errGuest) Error() string { return e.fn + ": " + e.msg }

// ErrGuest matches (with errors.Is) every trap raised by a host function
// because of a bad argument from the guest.
var ErrGuest = errors.New("invalid host function call")

func (e *errGuest) Is(target error) bool { return target == ErrGuest }

func guestErr(fn, format string, args ...any) error {
	return &errGuest{fn: fn, msg: fmt.Sprintf(format, args...)}
}
