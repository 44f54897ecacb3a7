package core

import (
	"net/netip"
	"testing"

	"github.com/sluicegw/sluice/core/internal/model"
)

func TestRoutePolicy(t *testing.T) {
	be := &model.Backend{Name: "default/web:80"}
	for _, tc := range []struct {
		r    model.Route
		want string
	}{
		{model.Route{Backend: be}, "-"},
		{model.Route{Backend: be, Redirect: &model.Redirect{URL: "https://x.test/", Code: 301}}, "redirect 301 https://x.test/"},
		{model.Route{Backend: be, Rewrite: "/$1", CORS: &model.CORS{}}, "rewrite /$1; cors"},
		{model.Route{Backend: be, Canary: &model.Canary{Backend: &model.Backend{Name: "default/web-v2:80"}, Weight: 20, WeightTotal: 100}},
			"canary default/web-v2:80 20/100"},
		{model.Route{Backend: be, Traffic: &model.Traffic{Protocol: model.ProtocolGRPCS, MaxBodyBytes: 1 << 20,
			AllowSources: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, MaxConnsPerClient: 5}},
			"protocol grpcs; max-body 1048576; sources +1/-0; limit-connections 5"},
		{model.Route{Backend: be, Filters: []model.FilterRef{{Name: "ratelimit"}, {Name: "audit"}}, FilterError: "bad"},
			"filters ratelimit,audit; 503: invalid filter chain"},
	} {
		if got := routePolicy(&tc.r); got != tc.want {
			t.Errorf("routePolicy(%+v) = %q, want %q", tc.r, got, tc.want)
		}
	}
}
