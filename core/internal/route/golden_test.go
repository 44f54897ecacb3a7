package route

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/core/internal/upstream"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// goldenRequests are matched against testdata/snapshot.json; the outcomes
// are in testdata/match.golden.
var goldenRequests = [][2]string{
	{"shop.example", "/"},
	{"shop.example", "/api/v1"},
	{"shop.example", "/api/v1/"},
	{"shop.example", "/api/v1/cart"},
	{"shop.example", "/api/v1/cart/items/3"},
	{"shop.example", "/api/v1x"},
	{"shop.example", "/api/v2/../v1/cart"},
	{"shop.example", "/healthz"},
	{"shop.example", "/healthz/"},
	{"SHOP.example:443", "//api//v1"},
	{"eu.shop.example", "/anything"},
	{"a.eu.shop.example", "/anything"},
	{"static.example", "/assets/app.js"},
	{"static.example", "/"},
	{"unknown.example", "/x"},
	{"[2001:db8::1]:8443", "/x"},
	{"", ""},
}

func TestMatchGolden(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "snapshot.json"))
	if err != nil {
		t.Fatal(err)
	}
	var snap model.Snapshot
	if err := json.Unmarshal(raw, &snap); err != nil {
		t.Fatalf("testdata/snapshot.json: %v", err)
	}
	tbl, err := Compile(&snap, upstream.NewSet(upstream.Options{}).Sync(&snap))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, rq := range goldenRequests {
		r := tbl.Match(rq[0], rq[1])
		fmt.Fprintf(&b, "%q %q -> ", rq[0], rq[1])
		switch {
		case r.Route != nil:
			fmt.Fprintf(&b, "host %q %s %q (%s) backend %s", r.Host, r.Route.PathType, r.Route.Path, r.Route.Source, r.Backend.Name)
		case r.Backend != nil:
			fmt.Fprintf(&b, "default backend %s", r.Backend.Name)
		default:
			b.WriteString("404")
		}
		fmt.Fprintf(&b, " path %q\n", r.Path)
	}
	golden := filepath.Join("testdata", "match.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestMatchGolden -update to create it)", err)
	}
	if got := b.String(); got != string(want) {
		t.Errorf("match results differ from %s (rerun with -update if intended):\n got:\n%s\nwant:\n%s", golden, got, want)
	}
}
