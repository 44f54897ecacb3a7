package route_test

import (
	"fmt"

	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/core/internal/route"
	"github.com/sluicegw/sluice/core/internal/upstream"
)

func ExampleTable_Match() {
	web := &model.Backend{Name: "default/web:80", Endpoints: []string{"10.0.0.1:8080"}}
	snap := &model.Snapshot{Hosts: []*model.VirtualHost{{
		Name:   "*.example.com",
		Routes: []*model.Route{{PathType: model.PathPrefix, Path: "/app", Backend: web}},
	}}}
	tbl, err := route.Compile(snap, upstream.NewSet(upstream.Options{}).Sync(snap))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, req := range [][2]string{
		{"shop.Example.com:443", "/app/../app/cart"},
		{"a.b.example.com", "/app"},
		{"shop.example.com", "/application"},
	} {
		r := tbl.Match(req[0], req[1])
		if r.Backend == nil {
			fmt.Println(req[0], req[1], "-> 404")
			continue
		}
		fmt.Println(req[0], req[1], "->", r.Backend.Name, r.Path)
	}
	// Output:
	// shop.Example.com:443 /app/../app/cart -> default/web:80 /app/cart
	// a.b.example.com /app -> 404
	// shop.example.com /application -> 404
}

// A regex route (ingress-nginx use-regex) matches case-insensitively from
// the start of the path; Result.Regexp gives its groups, which the proxy
// substitutes into the route's rewrite target.
func ExampleTable_Match_regex() {
	api := &model.Backend{Name: "default/api:80", Endpoints: []string{"10.0.0.2:8080"}}
	snap := &model.Snapshot{Hosts: []*model.VirtualHost{{
		Name:   "shop.example",
		Routes: []*model.Route{{PathType: model.PathRegex, Path: "/api(/|$)(.*)", Rewrite: "/$2", Backend: api}},
	}}}
	tbl, err := route.Compile(snap, upstream.NewSet(upstream.Options{}).Sync(snap))
	if err != nil {
		fmt.Println(err)
		return
	}
	r := tbl.Match("shop.example", "/API/users/7")
	fmt.Printf("%s %q\n", r.Backend.Name, r.Regexp.FindStringSubmatch(r.Path)[2])
	// Output:
	// default/api:80 "users/7"
}
