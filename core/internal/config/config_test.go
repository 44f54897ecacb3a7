package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultsAreValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	cfg, err := Load(Sources{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != ":8080" || cfg.Upstream.ConnectTimeout != 5*time.Second {
		t.Fatalf("unexpected defaults: %+v", cfg)
	}
}

func TestFormats(t *testing.T) {
	for name, body := range map[string]string{
		"c.yaml": "http_addr: 127.0.0.1:1000\nupstream:\n  connect_timeout: 2s\n  balancer: least_request\n",
		"c.yml":  "http_addr: 127.0.0.1:1000\nupstream: {connect_timeout: 2s, balancer: least_request}\n",
		"c.toml": "http_addr = \"127.0.0.1:1000\"\n[upstream]\nconnect_timeout = \"2s\"\nbalancer = \"least_request\"\n",
		"c.json": `{"http_addr": "127.0.0.1:1000", "upstream": {"connect_timeout": "2s", "balancer": "least_request"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			cfg, err := Load(Sources{File: writeFile(t, name, body)})
			if err != nil {
				t.Fatal(err)
			}
			if cfg.HTTPAddr != "127.0.0.1:1000" || cfg.Upstream.ConnectTimeout != 2*time.Second || cfg.Upstream.Balancer != "least_request" {
				t.Fatalf("got %+v", cfg)
			}
			// Keys the file does not set keep their defaults.
			if cfg.Upstream.ResponseTimeout != 60*time.Second || cfg.HTTPSAddr != ":8443" {
				t.Fatalf("defaults lost: %+v", cfg)
			}
		})
	}
}

func TestLayerOrder(t *testing.T) {
	file := writeFile(t, "c.yaml", "http_addr: 127.0.0.1:1\nhttps_addr: 127.0.0.1:2\nadmin_addr: 127.0.0.1:3\n")
	env := []string{"SLUICE_HTTPS_ADDR=127.0.0.1:20", "SLUICE_ADMIN_ADDR=127.0.0.1:30", "PATH=/bin", "SLUICE_UPSTREAM_CONNECT_TIMEOUT=3s"}
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	fs.String("admin-addr", "", "")
	fs.String("http-addr", "", "")
	fs.String("config", "", "") // not a config key: ignored by Load
	if err := fs.Parse([]string{"--admin-addr", "127.0.0.1:300", "--config", "x"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(Sources{File: file, Env: env, Flags: fs})
	if err != nil {
		t.Fatal(err)
	}
	want := [...]string{"127.0.0.1:1", "127.0.0.1:20", "127.0.0.1:300"}
	got := [...]string{cfg.HTTPAddr, cfg.HTTPSAddr, cfg.AdminAddr}
	if got != want {
		t.Fatalf("file < env < flags: got %v, want %v", got, want)
	}
	if cfg.Upstream.ConnectTimeout != 3*time.Second {
		t.Fatalf("env nested key: got %v", cfg.Upstream.ConnectTimeout)
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	cases := map[string]struct {
		src  func(t *testing.T) Sources
		want []string
	}{
		"unknown key with suggestion": {
			src: func(t *testing.T) Sources {
				return Sources{File: writeFile(t, "c.yaml", "upstream:\n  conect_timeout: 2s\n")}
			},
			want: []string{`unknown key "upstream.conect_timeout"`, `did you mean "upstream.connect_timeout"`, "c.yaml"},
		},
		"bad duration": {
			src: func(t *testing.T) Sources {
				return Sources{File: writeFile(t, "c.yaml", "upstream:\n  connect_timeout: soon\n")}
			},
			want: []string{"connect_timeout", `"soon" is not a duration`},
		},
		"bare number duration": {
			src: func(t *testing.T) Sources {
				return Sources{File: writeFile(t, "c.yaml", "server:\n  idle_timeout: 30\n")}
			},
			want: []string{"idle_timeout", "write it with a unit"},
		},
		"bad balancer": {
			src: func(t *testing.T) Sources {
				return Sources{File: writeFile(t, "c.json", `{"upstream": {"balancer": "random"}}`)}
			},
			want: []string{"upstream.balancer", `"random"`},
		},
		"bad address": {
			src:  func(t *testing.T) Sources { return Sources{File: writeFile(t, "c.yaml", "admin_addr: localhost\n")} },
			want: []string{"admin_addr", `"localhost" is not host:port`},
		},
		"bad log level": {
			src:  func(t *testing.T) Sources { return Sources{Env: []string{"SLUICE_LOG_LEVEL=loud"}} },
			want: []string{"log.level", `"loud"`},
		},
		"unknown env": {
			src:  func(t *testing.T) Sources { return Sources{Env: []string{"SLUICE_HTTP_ADR=:1"}} },
			want: []string{"SLUICE_HTTP_ADR", "not a config key"},
		},
		"unknown extension": {
			src:  func(t *testing.T) Sources { return Sources{File: writeFile(t, "c.ini", "x=1")} },
			want: []string{"c.ini", "unknown format"},
		},
		"malformed yaml": {
			src:  func(t *testing.T) Sources { return Sources{File: writeFile(t, "c.yaml", "http_addr: [\n")} },
			want: []string{"config file", "c.yaml"},
		},
		"missing file": {
			src:  func(t *testing.T) Sources { return Sources{File: filepath.Join(t.TempDir(), "nope.yaml")} },
			want: []string{"nope.yaml"},
		},
		"map under scalar": {
			src:  func(t *testing.T) Sources { return Sources{File: writeFile(t, "c.yaml", "http_addr:\n  port: 1\n")} },
			want: []string{`"http_addr"`, "single value"},
		},
		"header limit": {
			src: func(t *testing.T) Sources {
				return Sources{File: writeFile(t, "c.yaml", "server:\n  max_header_bytes: 10\n")}
			},
			want: []string{"server.max_header_bytes"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Load(tc.src(t))
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestEveryKeyHasAnEnvName(t *testing.T) {
	seen := map[string]string{}
	for key := range Keys() {
		n := envName(key)
		if other, dup := seen[n]; dup {
			t.Fatalf("keys %q and %q share the environment name %s", key, other, n)
		}
		seen[n] = key
	}
	if len(seen) < 10 {
		t.Fatalf("only %d keys found: reflection walk broken", len(seen))
	}
}

func TestScalarForSection(t *testing.T) {
	_, err := Load(Sources{File: writeFile(t, "c.yaml", "log: json\n")})
	if err == nil || !strings.Contains(err.Error(), `key "log" is a section`) || !strings.Contains(err.Error(), "log.format") {
		t.Fatalf("got %v", err)
	}
}

func TestNamedFilters(t *testing.T) {
	cfg, err := Load(Sources{File: writeFile(t, "c.yaml", `filters:
  team-auth:
    module: ./auth.wasm
    config: {audience: shop, hosts: [a, b]}
    fail: open
    pool: {min: 1, max: 8}
    timeout: 50ms
`)})
	if err != nil {
		t.Fatal(err)
	}
	f := cfg.Filters["team-auth"]
	if f.Module != "./auth.wasm" || f.Fail != "open" || f.Pool.Max != 8 || f.Timeout != 50*time.Millisecond || f.Config["audience"] != "shop" {
		t.Fatalf("got %+v", f)
	}
	for body, want := range map[string]string{
		"filters:\n  a:\n    modul: x.wasm\n":                            "filters",
		"filters:\n  a:\n    module: x.wasm\n    fail: sometimes\n":      "filters.a.fail",
		"filters:\n  a:\n    module: https://x/y.wasm\n":                 "filters.a.sha256: required",
		"filters:\n  a:\n    module: x.wasm\n    pool: {min: 3, max: 1}": "filters.a.pool",
		"filters:\n  Bad:\n    module: x.wasm\n":                         "filters.Bad",
		"wasm:\n  timeout: 0s\n":                                         "wasm.timeout",
	} {
		_, err := Load(Sources{File: writeFile(t, "c.yaml", body)})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want an error containing %q", body, err, want)
		}
	}
}
