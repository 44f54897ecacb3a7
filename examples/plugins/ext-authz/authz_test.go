package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicegw/sluice/plugins"
	"github.com/sluicegw/sluice/plugins/sdk"
)

// authServer is a real authorization service on 127.0.0.1: "Bearer good"
// is alice, "Bearer slow" answers after 2 s, anything else is refused.
type authServer struct {
	*httptest.Server
	mu   sync.Mutex
	seen []http.Header
}

func startAuthServer(t *testing.T) *authServer {
	t.Helper()
	a := &authServer{}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.seen = append(a.seen, r.Header.Clone())
		a.mu.Unlock()
		switch r.Header.Get("Authorization") {
		case "Bearer good":
			w.Header().Set("X-User", "alice")
			w.WriteHeader(http.StatusOK)
		case "Bearer slow":
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
		default:
			w.Header().Set("WWW-Authenticate", `Bearer realm="shop"`)
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintln(w, "no entry without a good token")
		}
	}))
	t.Cleanup(a.Close)
	return a
}

func (a *authServer) last() http.Header {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.seen) == 0 {
		return nil
	}
	return a.seen[len(a.seen)-1]
}

func configJSON(t *testing.T, c config) []byte {
	t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAuthz calls the filter directly: the logic without a gateway.
func TestAuthz(t *testing.T) {
	srv := startAuthServer(t)
	f := &authz{}
	if err := f.Configure(context.Background(), "ext-authz", configJSON(t, config{URL: srv.URL, Timeout: "200ms", UpstreamHeaders: []string{"X-User"}})); err != nil {
		t.Fatal(err)
	}
	req := func(auth string) *sdk.Request {
		h := http.Header{"X-User": {"mallory"}}
		if auth != "" {
			h.Set("Authorization", auth)
		}
		return &sdk.Request{Method: "POST", URI: "/cart?id=1", Host: "shop.test", Header: h, RemoteAddr: "192.0.2.7:5555"}
	}

	a, err := f.HandleRequest(context.Background(), req("Bearer good"))
	if err != nil || a.Reply != nil || a.SetHeader.Get("X-User") != "alice" {
		t.Fatalf("allowed request: %+v, %v", a, err)
	}
	seen := srv.last()
	for k, want := range map[string]string{"X-Forwarded-Method": "POST", "X-Forwarded-Uri": "/cart?id=1", "X-Forwarded-Host": "shop.test", "X-Forwarded-For": "192.0.2.7", "Authorization": "Bearer good", "X-User": ""} {
		if got := seen.Get(k); got != want {
			t.Errorf("the service saw %s = %q, want %q", k, got, want)
		}
	}

	a, err = f.HandleRequest(context.Background(), req(""))
	if err != nil || a.Reply == nil || a.Reply.Status != 401 || string(a.Reply.Body) != "no entry without a good token\n" ||
		a.Reply.Header.Get("Www-Authenticate") != `Bearer realm="shop"` {
		t.Fatalf("denied request: %+v, %v", a, err)
	}

	if _, err := f.HandleRequest(context.Background(), req("Bearer slow")); err == nil || !strings.Contains(err.Error(), "authorization service") {
		t.Fatalf("a slow service: %v, want an error", err)
	}

	for _, bad := range []config{{}, {URL: "ftp://x"}, {URL: srv.URL, Timeout: "soon"}} {
		if err := (&authz{}).Configure(context.Background(), "ext-authz", configJSON(t, bad)); err == nil || !strings.Contains(err.Error(), "plugin ext-authz: config") {
			t.Errorf("Configure(%+v) = %v", bad, err)
		}
	}
}

// TestAuthzPlugin runs the built plugin as a process under a real plugin
// manager, against the real authorization server.
func TestAuthzPlugin(t *testing.T) {
	srv := startAuthServer(t)
	bin := filepath.Join(t.TempDir(), "ext-authz")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	m := plugins.NewManager(plugins.Options{})
	defer m.Close()
	conf := configJSON(t, config{URL: srv.URL, Timeout: "100ms", UpstreamHeaders: []string{"X-User"}})
	down := configJSON(t, config{URL: "http://127.0.0.1:1/", Timeout: "100ms"})
	if errs := m.Sync(context.Background(), []plugins.Spec{
		{Name: "ext-authz", Command: bin, Config: conf},
		{Name: "authz-down-open", Command: bin, Config: down, Fail: plugins.FailOpen},
	}); len(errs) > 0 {
		t.Fatal(errs)
	}
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s\n", r.Header.Get("X-User"))
	})
	f, _ := m.Filter("ext-authz", nil, nil)
	open, _ := m.Filter("authz-down-open", nil, nil)
	for _, tc := range []struct {
		name   string
		f      *plugins.RouteFilter
		auth   string
		status int
		body   string
	}{
		{"allowed, the service's user replaces the client's", f, "Bearer good", 200, "hello alice\n"},
		{"denied with the service's answer", f, "Bearer bad", 401, "no entry without a good token\n"},
		{"slow service fails closed", f, "Bearer slow", 500, "filter failed ext-authz"},
		{"service down fails open", open, "Bearer good", 200, "hello mallory\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "http://shop.test/", nil)
			req.Header.Set("Authorization", tc.auth)
			req.Header.Set("X-User", "mallory")
			rec := httptest.NewRecorder()
			tc.f.Middleware(upstream).ServeHTTP(rec, req)
			body, _ := io.ReadAll(rec.Result().Body)
			if rec.Code != tc.status || !strings.Contains(string(body), tc.body) {
				t.Fatalf("got %d %q, want %d containing %q", rec.Code, body, tc.status, tc.body)
			}
		})
	}
}
