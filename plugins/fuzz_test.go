package plugins

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"golang.org/x/net/http/httpguts"
)

// FuzzApply: whatever a plugin answers, apply neither panics nor changes
// the original request, and what it accepts is a usable request.
func FuzzApply(f *testing.F) {
	f.Add("GET", "/a?b=1", "X-A", "1", "X-B")
	f.Add("", "http://evil.test/", "Host", "other.test", "")
	f.Add("BAD METHOD", "//x", "", "", "Content-Length")
	f.Add("PATCH", "/%zz", "x-lower", "v\r\nInjected: 1", "x-a")
	f.Fuzz(func(t *testing.T, method, uri, setK, setV, remove string) {
		r := httptest.NewRequest("GET", "http://x.test/orig?q=1", nil)
		r.Header.Set("X-A", "orig")
		act := &RequestAction{Method: method, URI: uri}
		if setK != "" {
			act.SetHeader = http.Header{setK: {setV}}
		}
		if remove != "" {
			act.RemoveHeader = []string{remove}
		}
		out, err := apply(r, act)
		if r.Method != "GET" || r.URL.RequestURI() != "/orig?q=1" || r.Header.Get("X-A") != "orig" || r.Host != "x.test" {
			t.Fatalf("the original request changed: %s %s %v", r.Method, r.URL, r.Header)
		}
		if err != nil {
			return
		}
		for k, vs := range out.Header {
			for _, v := range vs {
				if !httpguts.ValidHeaderFieldName(k) || !httpguts.ValidHeaderFieldValue(v) {
					t.Fatalf("accepted header %q: %q", k, v)
				}
			}
		}
		if out.URL == nil || out.Method == "" || (uri != "" && (out.URL.Host != "" || out.URL.Scheme != "")) {
			t.Fatalf("accepted a bad request: %s %v", out.Method, out.URL)
		}
	})
}
