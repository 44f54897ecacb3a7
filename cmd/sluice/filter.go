package main

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"

	"github.com/spf13/pflag"
)

// filterTemplates is the skeleton `sluice filter new` writes: the path of
// each file (without .tmpl, "gitignore" becoming ".gitignore") is its
// path in the new filter's folder.
//
//go:embed filtertmpl
var filterTemplates embed.FS

// releaseVersion is the version of the SDK and Sluice modules a scaffold
// requires when it is not made inside a checkout.
const releaseVersion = "v0.1.0"

const filterUsage = `Usage:
  sluice filter new NAME [DIR] [--module PATH] [--sluice-dir DIR]

new  writes a Go filter module in DIR (default ./NAME): go.mod, main.go, a
     native unit test, a wasm test in wasmtest/, and a Makefile whose
     "make build" writes NAME.wasm. Inside a Sluice checkout (or with
     --sluice-dir) the modules point at the checkout's sdk/ and root.
`

var filterNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// filterCommand implements `sluice filter …`.
func filterCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "new" {
		if len(args) > 0 && (args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
			fmt.Fprint(stdout, filterUsage)
			return 0
		}
		fmt.Fprint(stderr, filterUsage)
		return 2
	}
	fs := pflag.NewFlagSet("filter new", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	module := fs.String("module", "", "Go module path of the filter (default example.com/filters/NAME)")
	sluiceDir := fs.String("sluice-dir", "", "a Sluice checkout to build against (default: the checkout around the current directory, if any)")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "sluice filter new:", err)
		return 2
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		fmt.Fprint(stderr, filterUsage)
		return 2
	}
	name := fs.Arg(0)
	dir := name
	if fs.NArg() == 2 {
		dir = fs.Arg(1)
	}
	if *module == "" {
		*module = "example.com/filters/" + name
	}
	root := *sluiceDir
	if root == "" {
		if wd, err := os.Getwd(); err == nil {
			root = findCheckout(wd)
		}
	}
	if err := newFilter(name, dir, *module, root); err != nil {
		fmt.Fprintln(stderr, "sluice filter new:", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote filter %s in %s\n  cd %s && make build   # %s.wasm\n", name, dir, dir, name)
	return 0
}

// scaffold is the data of the templates.
type scaffold struct {
	Name, Module, Version string
	SDKDir, RootDir       string // replace targets, relative to the files' folders; empty outside a checkout
}

// newFilter writes the skeleton of filter name into dir, which must not
// exist or be empty. root, if set, is a Sluice checkout the new modules
// use through replace directives.
func newFilter(name, dir, module, root string) error {
	if !filterNameRE.MatchString(name) {
		return fmt.Errorf("filter name %q: want a lowercase letter, then lowercase letters, digits or '-' (at most 63)", name)
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("%s: exists and is not empty", dir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	s := scaffold{Name: name, Module: module, Version: releaseVersion}
	if root != "" {
		if !isCheckout(root) {
			return fmt.Errorf("--sluice-dir %s: not a Sluice checkout (no go.mod of github.com/sluicegw/sluice with sdk/go.mod)", root)
		}
		s.Version = "v0.0.0"
	}
	// Render everything before writing anything: no half-written folder
	// because of a template error.
	files := map[string][]byte{}
	err := fs.WalkDir(filterTemplates, "filtertmpl", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel := strings.TrimSuffix(strings.TrimPrefix(p, "filtertmpl/"), ".tmpl")
		if rel == "gitignore" {
			rel = ".gitignore"
		}
		data := s
		if root != "" {
			from, err := filepath.Abs(filepath.Join(dir, filepath.Dir(rel)))
			if err != nil {
				return err
			}
			data.SDKDir, data.RootDir = replacePath(from, filepath.Join(root, "sdk"), root), replacePath(from, root, root)
		}
		t, err := template.ParseFS(filterTemplates, p)
		if err != nil {
			return err
		}
		var b bytes.Buffer
		if err := t.Execute(&b, data); err != nil {
			return fmt.Errorf("template %s: %w", p, err)
		}
		files[rel] = b.Bytes()
		return nil
	})
	if err != nil {
		return err
	}
	for rel, b := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// replacePath is the replace target for target as seen from the folder
// from: relative when from is inside the checkout root (the scaffold moves
// with the checkout), else absolute. Slash-separated, as go.mod wants.
func replacePath(from, target, root string) string {
	absTarget, err1 := filepath.Abs(target)
	absRoot, err2 := filepath.Abs(root)
	if err1 != nil || err2 != nil {
		return filepath.ToSlash(target)
	}
	r, err := filepath.Rel(absRoot, from)
	if err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) {
		return filepath.ToSlash(absTarget)
	}
	if r, err = filepath.Rel(from, absTarget); err != nil {
		return filepath.ToSlash(absTarget)
	}
	if !strings.HasPrefix(r, ".") {
		r = "./" + r // a relative replace path must start with ./ or ../
	}
	return filepath.ToSlash(r)
}

// findCheckout returns the Sluice checkout containing dir, or "".
func findCheckout(dir string) string {
	for {
		if isCheckout(dir) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

func isCheckout(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	first, _, _ := strings.Cut(string(b), "\n")
	if strings.TrimSpace(first) != "module github.com/sluicegw/sluice" {
		return false
	}
	_, err = os.Stat(filepath.Join(dir, "sdk", "go.mod"))
	return err == nil
}
