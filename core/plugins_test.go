package core

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluicegw/sluice/core/internal/config"
	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/plugins"
)

func TestPluginSpecs(t *testing.T) {
	g := &Gateway{opts: Options{ConfigFile: "/etc/sluice/sluice.yaml"}}
	cfg := &config.Config{Plugins: map[string]config.Plugin{
		"b": {Command: "./bin/authz", Args: []string{"-v"}, Env: map[string]string{"Z": "1", "A": "2"},
			Config: map[string]any{"url": "http://127.0.0.1:1/", "n": 1}, Fail: "open", Timeout: time.Second, MaxConcurrent: 3},
		"a": {Command: "authz-in-path"},
		"c": {Command: "/abs/authz"},
	}}
	specs, errs := g.pluginSpecs(cfg)
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	want := []plugins.Spec{
		{Name: "a", Command: "authz-in-path", Env: []string{}},
		{Name: "b", Command: filepath.Join("/etc/sluice", "bin/authz"), Args: []string{"-v"}, Env: []string{"A=2", "Z=1"},
			Config: []byte(`{"n":1,"url":"http://127.0.0.1:1/"}`), Fail: plugins.FailOpen, Timeout: time.Second, MaxConcurrent: 3},
		{Name: "c", Command: "/abs/authz", Env: []string{}},
	}
	if !reflect.DeepEqual(specs, want) {
		t.Fatalf("specs:\n got %+v\nwant %+v", specs, want)
	}
}

func TestPluginFilterResolution(t *testing.T) {
	cfg := &config.Config{Plugins: map[string]config.Plugin{"authz": {Command: "x"}}}
	g := &Gateway{}
	for _, tc := range []struct {
		ref     model.FilterRef
		ok      bool
		wantErr string
	}{
		{model.FilterRef{Name: "other"}, false, ""},                           // not a plugin: the wasm path resolves it
		{model.FilterRef{Name: "authz", Module: "file:///a.wasm"}, false, ""}, // inline entries are always wasm
		{model.FilterRef{Name: "authz"}, true, "plugin manager is not running"},
	} {
		_, ok, err := g.pluginFilter(cfg, tc.ref)
		if ok != tc.ok || (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("pluginFilter(%+v) = %v, %v; want %v, %q", tc.ref, ok, err, tc.ok, tc.wantErr)
		}
	}
	g.plugins = plugins.NewManager(plugins.Options{})
	defer g.plugins.Close()
	if _, ok, err := g.pluginFilter(cfg, model.FilterRef{Name: "authz", Fail: "sideways"}); !ok || err == nil || !strings.Contains(err.Error(), `"sideways"`) {
		t.Errorf("a bad fail policy: %v, %v", ok, err)
	}
	if _, ok, err := g.pluginFilter(cfg, model.FilterRef{Name: "authz"}); !ok || err == nil || !strings.Contains(err.Error(), "plugin authz: not configured") {
		t.Errorf("a configured plugin the manager does not run: %v, %v", ok, err)
	}
}
