// Package tck drives the http-wasm conformance kit (TCK) guest against a
// running server. It is reusable: the wasm package's tests run it against
// the middleware on an httptest server, and the gateway's end-to-end tests
// can run it against the real sluice process.
//
// Setup the server under test so that the TCK guest is the only filter of
// a route whose upstream answers with EchoHandler, then call Run with the
// route's base URL (http://127.0.0.1:PORT or https://…) and a client for it.
package tck

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
)

// EchoHandler is the TCK's upstream: it answers every request with
// x-httpwasm-next-method, x-httpwasm-next-uri and, for each request header
// NAME and each of its values i, x-httpwasm-next-header-NAME-i.
func EchoHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("x-httpwasm-next-method", r.Method)
		h.Set("x-httpwasm-next-uri", r.URL.RequestURI())
		for name, vals := range r.Header {
			for i, v := range vals {
				h.Set(fmt.Sprintf("x-httpwasm-next-header-%s-%d", name, i), v)
			}
		}
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	})
}

// Case is one TCK request.
type Case struct {
	ID      string
	Method  string
	Path    string
	Headers [][2]string // in order; repeated names add values
	Body    string
	// Check inspects the response beyond the common checks (status not
	// 500, x-httpwasm-tck-handled present); it returns "" when fine.
	Check func(resp *http.Response, body string) string
}

var uris = map[string]string{
	"simple":          "/simple",
	"simple/escaping": "/simple%26clean",
	"query":           "/animal?name=panda",
	"query/escaping":  "/disney?name=chip%26dale",
}

func expectHeader(name, want string) func(*http.Response, string) string {
	return func(resp *http.Response, _ string) string {
		if got := resp.Header.Get(name); got != want {
			return fmt.Sprintf("%s: got %q, want %q", name, got, want)
		}
		return ""
	}
}

// Cases returns every case of the kit's table, in a stable order.
func Cases() []Case {
	var cs []Case
	cs = append(cs, Case{ID: "get_protocol_version", Method: "GET", Path: "/get_protocol_version",
		Check: func(resp *http.Response, body string) string {
			if body != resp.Proto {
				return fmt.Sprintf("body %q, want the response protocol %q", body, resp.Proto)
			}
			return ""
		}})
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH"} {
		cs = append(cs, Case{ID: "get_method/" + m, Method: m, Path: "/"})
	}
	cs = append(cs, Case{ID: "set_method", Method: "GET", Path: "/", Check: expectHeader("x-httpwasm-next-method", "POST")})
	keys := make([]string, 0, len(uris))
	for k := range uris {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cs = append(cs, Case{ID: "get_uri/" + k, Method: "GET", Path: uris[k]})
	}
	for _, k := range keys {
		cs = append(cs, Case{ID: "set_uri/" + k, Method: "GET", Path: "/", Check: expectHeader("x-httpwasm-next-uri", uris[k])})
	}
	cs = append(cs,
		Case{ID: "get_header_values/request/lowercase-key", Method: "GET", Path: "/", Headers: [][2]string{{"single-header", "value"}}},
		Case{ID: "get_header_values/request/mixedcase-key", Method: "GET", Path: "/", Headers: [][2]string{{"Single-Header", "value"}}},
		Case{ID: "get_header_values/request/not-exists", Method: "GET", Path: "/"},
		Case{ID: "get_header_values/request/multiple-values", Method: "GET", Path: "/", Headers: [][2]string{{"multi-header", "value1"}, {"multi-header", "value2"}}},
		Case{ID: "get_header_names/request", Method: "GET", Path: "/", Headers: [][2]string{{"a-header", "value1"}, {"b-header", "2"}}},
		Case{ID: "set_header_value/request/new", Method: "GET", Path: "/", Headers: [][2]string{{"existing-header", "bear"}},
			Check: expectHeader("x-httpwasm-next-header-new-header-0", "value")},
		Case{ID: "set_header_value/request/existing", Method: "GET", Path: "/", Headers: [][2]string{{"existing-header", "bear"}},
			Check: expectHeader("x-httpwasm-next-header-existing-header-0", "value")},
		Case{ID: "add_header_value/request/new", Method: "GET", Path: "/", Headers: [][2]string{{"existing-header", "bear"}},
			Check: expectHeader("x-httpwasm-next-header-new-header-0", "value")},
		Case{ID: "add_header_value/request/existing", Method: "GET", Path: "/", Headers: [][2]string{{"existing-header", "bear"}},
			Check: func(resp *http.Response, body string) string {
				if s := expectHeader("x-httpwasm-next-header-existing-header-0", "bear")(resp, body); s != "" {
					return s
				}
				return expectHeader("x-httpwasm-next-header-existing-header-1", "value")(resp, body)
			}},
		Case{ID: "remove_header/request/new", Method: "GET", Path: "/", Headers: [][2]string{{"existing-header", "bear"}},
			Check: expectHeader("x-httpwasm-next-header-existing-header-0", "bear")},
		Case{ID: "remove_header/request/existing", Method: "GET", Path: "/", Headers: [][2]string{{"existing-header", "bear"}},
			Check: func(resp *http.Response, _ string) string {
				if v, ok := resp.Header["X-Httpwasm-Next-Header-Existing-Header-0"]; ok {
					return fmt.Sprintf("existing-header still reached the upstream: %q", v)
				}
				return ""
			}},
	)
	for _, s := range []struct {
		name string
		n    int
	}{{"empty", 0}, {"small", 5}, {"medium", 2048}, {"large", 4096}, {"xlarge", 5000}} {
		cs = append(cs, Case{ID: "read_body/request/" + s.name, Method: "POST", Path: "/", Body: strings.Repeat("a", s.n)})
	}
	cs = append(cs, Case{ID: "get_source_addr", Method: "GET", Path: "/"})
	return cs
}

// Run sends every case to baseURL with client, each as a subtest.
func Run(t *testing.T, baseURL string, client *http.Client) {
	t.Helper()
	for _, c := range Cases() {
		t.Run(c.ID, func(t *testing.T) {
			if msg := Do(client, baseURL, c); msg != "" {
				t.Error(msg)
			}
		})
	}
}

// Do runs one case and returns "" or what went wrong.
func Do(client *http.Client, baseURL string, c Case) string {
	var body io.Reader
	if c.Body != "" {
		body = strings.NewReader(c.Body)
	}
	req, err := http.NewRequest(c.Method, strings.TrimSuffix(baseURL, "/")+c.Path, body)
	if err != nil {
		return err.Error()
	}
	req.Header.Set("x-httpwasm-tck-testid", c.ID)
	for _, h := range c.Headers {
		req.Header[h[0]] = append(req.Header[h[0]], h[1]) // keep the case as written
	}
	resp, err := client.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "reading body: " + err.Error()
	}
	if resp.StatusCode == http.StatusInternalServerError {
		return fmt.Sprintf("guest failed: %q (body %q)", resp.Header.Get("x-httpwasm-tck-failed"), b)
	}
	if resp.Header.Get("x-httpwasm-tck-handled") == "" {
		return fmt.Sprintf("x-httpwasm-tck-handled missing (status %d, body %q)", resp.StatusCode, b)
	}
	if c.Check != nil {
		return c.Check(resp, string(b))
	}
	return ""
}
