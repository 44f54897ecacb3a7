// Command sluice is the Sluice ingress gateway. This file only parses flags
// and wires them to package core.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/sluicegw/sluice/core"
)

// version is set at release build time with -ldflags "-X main.version=…".
var version = ""

const usage = `sluice — a Kubernetes ingress gateway

Usage:
  sluice run   [--config FILE] [--manifests DIR] [--kubeconfig FILE | --in-cluster]
               [--http-addr :8080] [--https-addr :8443] [--admin-addr 127.0.0.1:9901]
               [--publish-service NS/NAME | --publish-address IP,HOST...]
  sluice check [--config FILE] [--manifests DIR]
  sluice ca export [--config FILE]
  sluice filter new NAME [DIR]   (scaffold a Go filter; see sdk/README.md)
  sluice plugin new NAME [DIR]   (scaffold a native plugin; see plugins/sdk)
  sluice version

run     serves the routes of the manifests folder (standalone mode), or of
        the Ingress objects of a cluster (cluster mode: --kubeconfig FILE or
        --in-cluster).
check   validates the config and manifests, prints the route table and every
        warning, and exits 1 if there is any warning. It serves nothing.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the exit, for tests.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run", "check":
		return serveOrCheck(args[0], args[1:], stdout, stderr)
	case "ca":
		return caCommand(args[1:], stdout, stderr)
	case "filter":
		return filterCommand(args[1:], stdout, stderr)
	case "plugin":
		return pluginCommand(args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "sluice", versionString())
		return 0
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "sluice: unknown command %q\n\n%s", args[0], usage)
	return 2
}

func serveOrCheck(cmd string, args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet(cmd, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config", "", "config file (YAML, TOML or JSON)")
	fs.String("manifests", "", "folder of Kubernetes manifests to serve (standalone mode)")
	if cmd == "run" {
		fs.String("kubeconfig", "", "kubeconfig of the cluster to watch (cluster mode)")
		fs.Bool("in-cluster", false, "watch the cluster this pod runs in (cluster mode)")
		fs.String("http-addr", "", "HTTP listen address (default :8080)")
		fs.String("https-addr", "", "HTTPS listen address (default :8443)")
		fs.String("admin-addr", "", "admin listen address (default 127.0.0.1:9901)")
		// Cluster mode: the status the elected replica writes on Ingresses.
		kubeAlias(fs, "publish-service", "kube.publish-service", "write status.loadBalancer of our Ingresses from this Service's (NAMESPACE/NAME)")
		kubeAlias(fs, "publish-address", "kube.publish-address", "write these IPs / host names (comma-separated) as status.loadBalancer of our Ingresses")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "sluice %s: %v\n", cmd, err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sluice %s: unexpected argument %q\n", cmd, fs.Arg(0))
		return 2
	}
	copyAliases(fs)
	opts := core.Options{ConfigFile: *configFile, Env: os.Environ(), Flags: fs, LogOutput: stderr}

	if cmd == "check" {
		n, err := core.Check(stdout, opts)
		if err != nil {
			fmt.Fprintln(stderr, "sluice check:", err)
			return 2
		}
		if n > 0 {
			return 1
		}
		return 0
	}

	g, err := core.New(opts)
	if err != nil {
		fmt.Fprintln(stderr, "sluice run:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := g.Run(ctx); err != nil {
		fmt.Fprintln(stderr, "sluice run:", err)
		return 1
	}
	return 0
}

// kubeAlias defines --short for the config key that the hidden flag
// --long (its name with "-" read as "_") sets; copyAliases copies it over
// after parsing.
func kubeAlias(fs *pflag.FlagSet, short, long, usage string) {
	fs.String(short, "", usage)
	fs.String(long, "", usage)
	fs.MarkHidden(long)
	fs.SetAnnotation(short, "alias-of", []string{long})
}

func copyAliases(fs *pflag.FlagSet) {
	fs.Visit(func(f *pflag.Flag) {
		if long := f.Annotations["alias-of"]; len(long) == 1 {
			fs.Set(long[0], f.Value.String())
		}
	})
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if rev != "" {
			if len(rev) > 12 {
				rev = rev[:12]
			}
			if dirty {
				rev += "-dirty"
			}
			return "dev-" + rev
		}
	}
	return "dev"
}
