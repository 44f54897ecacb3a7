package translate_test

//go:generate go run ./testdata/gencerts

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicegw/sluice/core/internal/manifest"
	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/core/internal/translate"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json from the current output")

// goldenNow is the clock of the golden cases; the generated certificates are
// valid around it (see testdata/gencerts).
var goldenNow = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// golden is what a testdata/<case>.golden.json file holds.
type golden struct {
	Snapshot *model.Snapshot `json:"snapshot"`
	Warnings []string        `json:"warnings"`
}

// TestGolden translates every testdata/<case>.yaml (decoded by the manifest
// source, as standalone mode does) and compares the snapshot and warnings
// with testdata/<case>.golden.json. Run with -update to rewrite the goldens,
// then review the diff.
func TestGolden(t *testing.T) {
	cases, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < 20 {
		t.Fatalf("found %d golden cases in testdata, want at least 20", len(cases))
	}
	for _, path := range cases {
		name := strings.TrimSuffix(filepath.Base(path), ".yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			in, srcWarnings := manifest.Decode(filepath.Base(path), data)
			for _, w := range srcWarnings {
				t.Errorf("manifest: %s", w)
			}
			snap, warnings := translate.Translate(in, translate.Options{Now: goldenNow})
			got := golden{Snapshot: snap, Warnings: []string{}}
			for _, w := range warnings {
				got.Warnings = append(got.Warnings, w.String())
			}
			gotJSON, err := json.MarshalIndent(got, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			gotJSON = append(gotJSON, '\n')
			goldenPath := strings.TrimSuffix(path, ".yaml") + ".golden.json"
			if *update {
				if err := os.WriteFile(goldenPath, gotJSON, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(goldenPath)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(gotJSON, want) {
				t.Errorf("%s differs from the output (run go test -update and review the diff):\n%s", goldenPath, lineDiff(string(want), string(gotJSON)))
			}
		})
	}
}

// lineDiff shows the lines that differ between want and got, with line
// numbers: enough to find a golden mismatch without a diff library.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 20; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			shown++
			fmt.Fprintf(&b, "line %d:\n  want: %s\n  got:  %s\n", i+1, wl, gl)
		}
	}
	return b.String()
}
