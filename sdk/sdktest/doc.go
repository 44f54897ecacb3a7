// Package sdktest runs a filter written with package sdk natively, in a
// simulated host that follows sdk/ABI.md, so that its logic is tested with
// plain go test: no wasm toolchain, no gateway. The result has the same
// shape as wasm/filtertest's, which runs the built .wasm in the real host:
// a table of cases can be checked both ways.
//
// Differences from the real host, by design: calls are serialized (Do
// holds a package lock, because the SDK's native build has one global
// host), a panic or an invalid argument becomes Result.Err with status 500
// (the real host traps and applies the failure policy), and there is no
// deadline or memory cap.
//
// The package is empty when built for wasip1: it is for native tests.
package sdktest
