// Command builtins is the one WebAssembly module that carries Sluice's
// three built-in filters (mtls-identity, header-policy, ratelimit). The
// gateway loads it once and gives each filter's instances the environment
// variable SLUICE_BUILTIN naming the filter to be; users still attach
// them by their own names. One module instead of three: the compiled code
// (most of it the Go runtime) is shared, so a request through all three
// runs one copy of it, and the gateway compiles and embeds one module.
// See RATIONALE.wasmperf.md ("Why one module for the three built-ins?").
package main

import (
	"syscall"

	headerpolicy "github.com/sluicegw/sluice/filters/header-policy"
	mtlsidentity "github.com/sluicegw/sluice/filters/mtls-identity"
	"github.com/sluicegw/sluice/filters/ratelimit"
	"github.com/sluicegw/sluice/sdk"
)

// EnvVar names the built-in an instance runs.
const EnvVar = "SLUICE_BUILTIN"

// filters are the built-ins by name.
var filters = map[string]func() sdk.Handler{
	"header-policy": headerpolicy.New,
	"mtls-identity": mtlsidentity.New,
	"ratelimit":     ratelimit.New,
}

func init() {
	name, _ := syscall.Getenv(EnvVar)
	if f := filters[name]; f != nil {
		sdk.Handle(f())
		return
	}
	sdk.Handle(unknown{name})
}

// main is never called: the module is a reactor, set up by init.
func main() {}

// unknown answers every request with 500 and says why: the host did not
// name a built-in (a gateway bug, or the module loaded by hand).
type unknown struct{ name string }

func (u unknown) HandleRequest(req sdk.Request, resp sdk.Response) bool {
	sdk.Log(sdk.LogError, "builtins: "+EnvVar+"="+u.name+" names no built-in filter (want header-policy, mtls-identity or ratelimit)")
	resp.SetStatusCode(500)
	resp.Body().WriteString("filter misconfigured\n")
	return false
}
