package main

import (
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"text/template"

	"github.com/spf13/pflag"
)

// pluginTemplates are the files of a new plugin project.
//
//go:embed plugintmpl/*.tmpl
var pluginTemplates embed.FS

const pluginUsage = `Usage:
  sluice plugin new NAME [DIR] [--sluice-path PATH]

new  writes a native plugin project (main.go, a test, go.mod, README.md) to
     DIR (default ./NAME), which must not exist or be empty. NAME is the
     plugin's name in the config file: lowercase letters, digits, '.', '_'
     or '-'. --sluice-path adds a replace directive to a local Sluice
     checkout.
`

var pluginNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$`)

// pluginCommand is `sluice plugin …`.
func pluginCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "new" {
		fmt.Fprint(stderr, pluginUsage)
		return 2
	}
	fset := pflag.NewFlagSet("plugin new", pflag.ContinueOnError)
	fset.SetOutput(stderr)
	sluicePath := fset.String("sluice-path", "", "a local Sluice checkout to build against (replace directive)")
	if err := fset.Parse(args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "sluice plugin new: %v\n", err)
		return 2
	}
	if fset.NArg() < 1 || fset.NArg() > 2 {
		fmt.Fprint(stderr, pluginUsage)
		return 2
	}
	name, dir := fset.Arg(0), fset.Arg(0)
	if fset.NArg() == 2 {
		dir = fset.Arg(1)
	}
	if err := newPlugin(name, dir, *sluicePath); err != nil {
		fmt.Fprintf(stderr, "sluice plugin new: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote plugin %s to %s\nnext: cd %s && go mod tidy && go test ./... && go build -o %s .\n", name, dir, dir, name)
	return 0
}

// newPlugin writes the project for plugin name into dir.
func newPlugin(name, dir, sluicePath string) error {
	if !pluginNameRE.MatchString(name) {
		return fmt.Errorf("plugin name %q: want lowercase letters, digits, '.', '_' or '-' (1-63), starting and ending with a letter or digit", name)
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return fmt.Errorf("folder %s is not empty: nothing written", dir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("folder %s: %w", dir, err)
	}
	if sluicePath != "" {
		abs, err := filepath.Abs(sluicePath)
		if err != nil {
			return fmt.Errorf("--sluice-path %s: %w", sluicePath, err)
		}
		if _, err := os.Stat(filepath.Join(abs, "plugins", "sdk")); err != nil {
			return fmt.Errorf("--sluice-path %s: not a Sluice checkout (no plugins/sdk): %w", sluicePath, err)
		}
		sluicePath = abs
	}
	data := struct {
		Name, Module, GoVersion, SluiceVersion, SluicePath string
	}{
		Name:          name,
		Module:        "example.com/" + name,
		GoVersion:     goVersion(),
		SluiceVersion: sluiceModuleVersion(),
		SluicePath:    sluicePath,
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("folder %s: %w", dir, err)
	}
	files, err := fs.Glob(pluginTemplates, "plugintmpl/*.tmpl")
	if err != nil {
		return err
	}
	for _, f := range files {
		tmpl, err := template.ParseFS(pluginTemplates, f)
		if err != nil {
			return fmt.Errorf("template %s: %w", f, err)
		}
		out := filepath.Join(dir, strings.TrimSuffix(filepath.Base(f), ".tmpl"))
		var b strings.Builder
		if err := tmpl.Execute(&b, data); err != nil {
			return fmt.Errorf("template %s: %w", f, err)
		}
		if err := os.WriteFile(out, []byte(b.String()), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", out, err)
		}
	}
	return nil
}

// sluiceModuleVersion is the version of this binary's module, for the new
// project's require line; a development build has none, hence v0.0.0 (use
// --sluice-path then).
func sluiceModuleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && strings.HasPrefix(bi.Main.Version, "v") {
		return bi.Main.Version
	}
	return "v0.0.0"
}

// goVersion is the language version of the new go.mod: the toolchain
// this binary was built with, which Sluice's own go.mod accepts.
func goVersion() string {
	return strings.TrimPrefix(runtime.Version(), "go")
}
