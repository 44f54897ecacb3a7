package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"

	"github.com/sluicegw/sluice/core"
)

// caCommand is `sluice ca export`: it prints the local CA's root
// certificate (PEM) so that clients can trust the gateway's certificates:
//
//	curl --cacert <(sluice ca export --config sluice.yaml) https://demo.localhost:8443/
func caCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "export" {
		fmt.Fprintln(stderr, "sluice ca: want the subcommand export (sluice ca export [--config FILE])")
		return 2
	}
	fs := pflag.NewFlagSet("ca export", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config", "", "config file (YAML, TOML or JSON); tls.storage names the CA's storage")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "sluice ca export: %v\n", err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sluice ca export: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	opts := core.Options{ConfigFile: *configFile, Env: os.Environ()}
	if err := core.ExportCARoot(context.Background(), stdout, opts); err != nil {
		fmt.Fprintln(stderr, "sluice ca export:", err)
		return 1
	}
	return 0
}
