package translate_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sluicegw/sluice/core/internal/manifest"
	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/core/internal/route"
	"github.com/sluicegw/sluice/core/internal/translate"
	"github.com/sluicegw/sluice/core/internal/upstream"
)

// compiles checks the contract with the next stage: route.Compile rejects a
// whole snapshot for what translate must never produce (invalid host names,
// unnormalized Exact paths, duplicate hosts...), and one bad Ingress must
// never stop every other from being served.
func compiles(t *testing.T, name string, snap *model.Snapshot) {
	t.Helper()
	pools := upstream.NewSet(upstream.Options{}).Sync(snap)
	if _, err := route.Compile(snap, pools); err != nil {
		t.Errorf("%s: route.Compile refuses the snapshot: %v", name, err)
	}
}

func TestSnapshotsCompile(t *testing.T) {
	for name, in := range goldenInputs(t) {
		snap, _ := translate.Translate(in, translate.Options{Now: now})
		compiles(t, name, snap)
	}
}

// FuzzTranslate decodes arbitrary manifests, translates them and compiles
// the result: whatever the input, Translate does not panic, hosts are sorted,
// and route.Compile accepts the snapshot.
func FuzzTranslate(f *testing.F) {
	paths, _ := filepath.Glob("testdata/*.yaml")
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in, _ := manifest.Decode("fuzz.yaml", data)
		snap, _ := translate.Translate(in, translate.Options{Now: now, AllowLoopback: true})
		for i := 1; i < len(snap.Hosts); i++ {
			if snap.Hosts[i-1].Name >= snap.Hosts[i].Name {
				t.Fatalf("hosts not sorted: %q, %q", snap.Hosts[i-1].Name, snap.Hosts[i].Name)
			}
		}
		compiles(t, "fuzz", snap)
	})
}
