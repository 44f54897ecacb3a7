package policy

import (
	"strings"
	"testing"
)

func TestParseHeaderPolicy(t *testing.T) {
	for _, tc := range []struct{ in, err string }{
		{``, ""},
		{`{"request":{"set":{"X-A":"${client_ip} ${host}${path} ${method} ${request_id}"},"remove":["X-B"],"deny":["X-C"],"require":[{"name":"X-D"}],"max_headers":10,"max_header_bytes":4096,"request_id":"X-Trace"},"response":{"add":{"X-E":"1"},"remove":["Server"],"hsts":"max-age=60"}}`, ""},
		{`{"request":{"set":{"a b":"x"}}}`, `request.set: "a b": not a header name`},
		{`{"request":{"set":{"X":"a\r\nb"}}}`, "request.set.X: a value cannot contain CR, LF or NUL"},
		{`{"request":{"set":{"X":"${nope}"}}}`, "request.set.X: unknown variable ${nope}"},
		{`{"request":{"add":{"X":"${host"}}}`, "request.add.X: unterminated ${"},
		{`{"request":{"remove":[""]}}`, `request.remove[0]: ""`},
		{`{"request":{"deny":["a:b"]}}`, `request.deny[0]: "a:b"`},
		{`{"request":{"require":[{"name":"X","match":"["}]}}`, "request.require[0].match: error parsing regexp"},
		{`{"request":{"reject_status":302}}`, "request.reject_status: 302: want a 4xx status"},
		{`{"request":{"max_headers":-1}}`, "request.max_headers: must not be negative"},
		{`{"request":{"request_id":3}}`, "request.request_id: want true, false or a header name"},
		{`{"response":{"hsts":"1 year"}}`, `response.hsts: "1 year"`},
		{`{"response":{"strip":["a"]}}`, `unknown field "strip"`},
		{`{"trusted_proxies":["x"]}`, `trusted_proxies[0]: "x"`},
	} {
		_, err := ParseHeaderPolicy([]byte(tc.in))
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: error %v, want %q", tc.in, err, tc.err)
		}
	}
}

func TestExpand(t *testing.T) {
	vars := func(n string) string { return "<" + n + ">" }
	for in, want := range map[string]string{
		"plain":                "plain",
		"${host}":              "<host>",
		"a ${host} b ${path}c": "a <host> b <path>c",
		"${host":               "${host",
		"$${host}}":            "$<host>}",
		"${route}":             "<route>",
		"${host}${path}":       "<host><path>",
		"${}":                  "<>",
	} {
		if got := Expand(in, vars); got != want {
			t.Errorf("Expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzParseHeaderPolicy(f *testing.F) {
	f.Add([]byte(`{"request":{"set":{"X":"${host}"},"require":[{"name":"Y","match":"^a"}]},"response":{"hsts":true}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		hp, err := ParseHeaderPolicy(b)
		if err != nil {
			return
		}
		if s := hp.Request.RejectStatus; s < 400 || s > 499 {
			t.Fatalf("%q: reject status %d", b, s)
		}
		for _, hv := range append(hp.Request.Set, hp.Response.Set...) {
			if !isToken(hv.Name) || strings.ContainsAny(hv.Value, "\r\n") {
				t.Fatalf("%q: accepted %+v", b, hv)
			}
		}
	})
}
