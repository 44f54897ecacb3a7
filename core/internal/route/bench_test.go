package route

import (
	"fmt"
	"testing"

	"github.com/sluicegw/sluice/core/internal/model"
)

// BenchmarkMatch measures Match on large tables: 10,000 hosts with a few
// paths each, and one host with 10,000 paths.
func BenchmarkMatch(b *testing.B) {
	be := &model.Backend{Name: "b", Endpoints: []string{"127.0.0.1:1"}}
	many := &model.Snapshot{DefaultBackend: defaultBackend}
	for i := range 10000 {
		vh := &model.VirtualHost{Name: fmt.Sprintf("host-%d.example.com", i)}
		for _, p := range []string{"/", "/api", "/api/v1/users", "/static"} {
			vh.Routes = append(vh.Routes, &model.Route{PathType: model.PathPrefix, Path: p, Backend: be})
		}
		vh.Routes = append(vh.Routes, &model.Route{PathType: model.PathExact, Path: "/healthz", Backend: be})
		many.Hosts = append(many.Hosts, vh)
	}
	many.Hosts = append(many.Hosts, &model.VirtualHost{Name: "*.wild.example.com", Routes: []*model.Route{{PathType: model.PathPrefix, Path: "/", Backend: be}}})

	deep := &model.Snapshot{DefaultBackend: defaultBackend}
	vh := &model.VirtualHost{Name: "one.example.com"}
	for i := range 10000 {
		typ := model.PathPrefix
		if i%4 == 0 {
			typ = model.PathExact
		}
		vh.Routes = append(vh.Routes, &model.Route{PathType: typ, Path: fmt.Sprintf("/svc/%d/api", i), Backend: be})
	}
	deep.Hosts = []*model.VirtualHost{vh}

	tMany, tDeep := compile(b, many), compile(b, deep)
	cases := []struct {
		name       string
		tbl        *Table
		host, path string
	}{
		{"10kHosts/exact-host", tMany, "host-4711.example.com", "/api/v1/users/42"},
		{"10kHosts/upper-port", tMany, "HOST-4711.Example.com:8443", "/api/v1/users/42"},
		{"10kHosts/wildcard", tMany, "x.wild.example.com", "/a/b"},
		{"10kHosts/exact-path", tMany, "host-9999.example.com", "/healthz"},
		{"10kHosts/unclean-path", tMany, "host-1.example.com", "/api//v1/../v1/users"},
		{"10kHosts/miss", tMany, "nope.example.org", "/api"},
		{"10kPaths/prefix", tDeep, "one.example.com", "/svc/5001/api/items/7"},
		{"10kPaths/exact", tDeep, "one.example.com", "/svc/5000/api"},
		{"10kPaths/miss", tDeep, "one.example.com", "/svc/5000/apix/a/b/c"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if r := c.tbl.Match(c.host, c.path); r.Backend == nil {
					b.Fatal("no match")
				}
			}
		})
	}
}
