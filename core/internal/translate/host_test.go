package translate

import (
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/sluicegw/sluice/core/internal/model"
)

func TestNormalizeHost(t *testing.T) {
	tests := []struct {
		in, want string
		err      string // substring of the error; "" for valid hosts
	}{
		{"", "", ""},
		{"example.com", "example.com", ""},
		{"WWW.Example.COM", "www.example.com", ""},
		{"*.example.com", "*.example.com", ""},
		{"*.com", "*.com", ""},
		{"a-b.c9.example", "a-b.c9.example", ""},
		{"localhost", "localhost", ""},
		{"1.example.com", "1.example.com", ""},
		{"192.0.2.1", "", "not an IP address"},
		{"::1", "", "not an IP address"},
		{"2001:db8::1", "", "not an IP address"},
		{"[::1]", "", "label"},
		{"*", "", "wildcard"},
		{"*.*.example.com", "", "wildcard"},
		{"a*.example.com", "", "wildcard"},
		{"foo.*", "", "wildcard"},
		{"under_score.example.com", "", "label"},
		{"-a.example.com", "", "label"},
		{"a-.example.com", "", "label"},
		{"a..example.com", "", "empty label"},
		{"example.com.", "", "empty label"},
		{".example.com", "", "empty label"},
		{"example.com:80", "", "label"},
		{"ex ample.com", "", "label"},
		{"exämple.com", "", "label"},
		{strings.Repeat("a.", 126) + "a", strings.Repeat("a.", 126) + "a", ""},
		{strings.Repeat("a", 63) + ".com", strings.Repeat("a", 63) + ".com", ""},
		{strings.Repeat("a", 64) + ".com", "", "at most 63"},
		{strings.Repeat("a.", 127) + "a", "", "at most 253"},
	}
	for _, tt := range tests {
		got, err := normalizeHost(tt.in)
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("normalizeHost(%q): unexpected error %v", tt.in, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("normalizeHost(%q): error %v, want one containing %q", tt.in, err, tt.err)
		case got != tt.want:
			t.Errorf("normalizeHost(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestPathKey(t *testing.T) {
	exact, prefix, impl := networkingv1.PathTypeExact, networkingv1.PathTypePrefix, networkingv1.PathTypeImplementationSpecific
	tests := []struct {
		pt      *networkingv1.PathType
		path    string
		wantPT  model.PathType
		wantKey string
		err     string
	}{
		{&prefix, "/", model.PathPrefix, "/", ""},
		{&prefix, "//", "", "", `must not contain "//"`},
		{&prefix, "/foo", model.PathPrefix, "/foo", ""},
		{&prefix, "/foo/", model.PathPrefix, "/foo", ""},
		{&exact, "/foo/", model.PathExact, "/foo/", ""},
		{&exact, "/", model.PathExact, "/", ""},
		{&impl, "/foo/", model.PathPrefix, "/foo", ""},
		{&impl, "", model.PathPrefix, "/", ""},
		{&prefix, "", "", "", `must start with "/"`},
		{&exact, "foo", "", "", `must start with "/"`},
		{&impl, "foo", "", "", `must start with "/"`},
		{nil, "/", "", "", "pathType: required"},
		{ptr(networkingv1.PathType("prefix")), "/", "", "", "not one of"},
		{&prefix, "/a/./b", "", "", `"/./"`},
		{&prefix, "/a/../b", "", "", `"/../"`},
		{&prefix, "/a%2fb", "", "", `"%2f"`},
		{&prefix, "/a%2Fb", "", "", `"%2F"`},
		{&prefix, "/a/.", "", "", `end with "/."`},
		{&exact, "/a/..", "", "", `end with "/.."`},
		{&exact, "/a.b/..c", model.PathExact, "/a.b/..c", ""},
	}
	for _, tt := range tests {
		pt, key, msg := pathKey(&networkingv1.HTTPIngressPath{Path: tt.path, PathType: tt.pt})
		if tt.err != "" {
			if !strings.Contains(msg, tt.err) {
				t.Errorf("pathKey(%v, %q): message %q, want one containing %q", deref(tt.pt), tt.path, msg, tt.err)
			}
			continue
		}
		if msg != "" || pt != tt.wantPT || key != tt.wantKey {
			t.Errorf("pathKey(%v, %q) = %q, %q, %q; want %q, %q, \"\"", deref(tt.pt), tt.path, pt, key, msg, tt.wantPT, tt.wantKey)
		}
	}
}

func TestHostHasTLS(t *testing.T) {
	b := &builder{tlsHosts: map[string]bool{"a.example.com": true, "*.wild.example.com": true}}
	tests := map[string]bool{
		"":                     false,
		"a.example.com":        true,
		"b.example.com":        false,
		"x.wild.example.com":   true,
		"wild.example.com":     false,
		"x.y.wild.example.com": false,
		"*.wild.example.com":   true,
		"*.example.com":        false,
	}
	for host, want := range tests {
		if got := b.hostHasTLS(host); got != want {
			t.Errorf("hostHasTLS(%q) = %v, want %v", host, got, want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func deref(p *networkingv1.PathType) string {
	if p == nil {
		return "<nil>"
	}
	return string(*p)
}
