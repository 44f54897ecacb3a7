// Command ext-authz is a Sluice native plugin that asks an HTTP
// authorization service whether to let each request through. See
// README.md; the logic is in authz.go.
package main

import "github.com/sluicegw/sluice/plugins/sdk"

func main() { sdk.Serve(&authz{}) }
