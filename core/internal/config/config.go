// Package config loads Sluice's configuration with koanf, in layers (lowest
// first): built-in defaults < config file (YAML, TOML or JSON) < environment
// (SLUICE_ prefix) < command-line flags.
//
// Unknown keys and bad values are errors that name the key and the layer
// they came from, so a typo never silently falls back to a default.
package config

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/json"
	"github.com/knadh/koanf/parsers/toml"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"
)

// Config is the whole configuration. Keys are the koanf tags joined with ".".
type Config struct {
	HTTPAddr  string `koanf:"http_addr"`
	HTTPSAddr string `koanf:"https_addr"`
	AdminAddr string `koanf:"admin_addr"`
	// Manifests is the folder of Kubernetes manifests (standalone mode).
	Manifests string `koanf:"manifests"`
	// Kubeconfig (or InCluster) selects cluster mode: routes come from the
	// API server's Ingress objects. See Kube for the rest.
	Kubeconfig string `koanf:"kubeconfig"`
	InCluster  bool   `koanf:"in_cluster"`
	// IngressClass is the class name Sluice owns even without an IngressClass
	// object naming our controller.
	IngressClass string `koanf:"ingress_class"`

	Log      Log      `koanf:"log"`
	Server   Server   `koanf:"server"`
	Upstream Upstream `koanf:"upstream"`
	// Filters are named filter definitions (filters.go); Wasm configures
	// their host.
	Filters map[string]Filter `koanf:"filters"`
	Wasm    Wasm              `koanf:"wasm"`
	// Plugins are native plugin filters, by name (plugins.go).
	Plugins map[string]Plugin `koanf:"plugins"`
	TLS     TLS               `koanf:"tls"`  // tls.go
	Kube    Kube              `koanf:"kube"` // kube.go
	// RateLimit: the filters' bucket store, e.g. Redis (ratelimit.go).
	RateLimit RateLimit `koanf:"ratelimit"`
	// Admin and RequestID: observability.go.
	Admin     Admin     `koanf:"admin"`
	RequestID RequestID `koanf:"request_id"`
	// Proxy: trusted proxies (proxy.go).
	Proxy Proxy `koanf:"proxy"`
}

// Log configures the process log and the access log.
type Log struct {
	Format string `koanf:"format"` // text | json
	Level  string `koanf:"level"`  // debug | info | warn | error
	Access bool   `koanf:"access"` // one line per request
	// AccessFormat is text | json, empty for Format; AccessFields choose
	// and order the access log's fields (observability.go).
	AccessFormat string   `koanf:"access_format"`
	AccessFields []string `koanf:"access_fields"`
}

// Server configures the HTTP and HTTPS listeners.
type Server struct {
	ReadHeaderTimeout time.Duration `koanf:"read_header_timeout"`
	ReadTimeout       time.Duration `koanf:"read_timeout"`
	WriteTimeout      time.Duration `koanf:"write_timeout"`
	IdleTimeout       time.Duration `koanf:"idle_timeout"`
	MaxHeaderBytes    int           `koanf:"max_header_bytes"`
	ShutdownTimeout   time.Duration `koanf:"shutdown_timeout"`
}

// Upstream holds the defaults for every backend.
type Upstream struct {
	Balancer        string        `koanf:"balancer"` // round_robin | least_request
	ConnectTimeout  time.Duration `koanf:"connect_timeout"`
	ResponseTimeout time.Duration `koanf:"response_timeout"`
}

// Default returns the built-in defaults: the lowest layer.
func Default() *Config {
	return &Config{
		HTTPAddr:     ":8080",
		HTTPSAddr:    ":8443",
		AdminAddr:    "127.0.0.1:9901",
		IngressClass: "sluice",
		Log:          Log{Format: "text", Level: "info", Access: true},
		Server: Server{
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       120 * time.Second,
			MaxHeaderBytes:    64 << 10,
			ShutdownTimeout:   30 * time.Second,
		},
		Upstream: Upstream{
			Balancer:        "round_robin",
			ConnectTimeout:  5 * time.Second,
			ResponseTimeout: 60 * time.Second,
		},
		Wasm: Wasm{Timeout: time.Second, MemoryLimitPages: 256},
		TLS:  defaultTLS(),
		Kube: defaultKube(),
	}
}

// Sources are the layers above the defaults. Every field is optional.
type Sources struct {
	// File is a config file; its format is chosen by extension
	// (.yaml, .yml, .toml, .json).
	File string
	// Env is the process environment as os.Environ returns it. Only
	// variables with the SLUICE_ prefix are read.
	Env []string
	// Flags are the parsed command-line flags. Only flags that were set and
	// whose name, with "-" read as "_", is a config key override.
	Flags *pflag.FlagSet
}

// EnvPrefix starts every environment variable that sets a config key:
// SLUICE_UPSTREAM_CONNECT_TIMEOUT sets upstream.connect_timeout.
const EnvPrefix = "SLUICE_"

// Load builds the configuration from the defaults and the sources and
// validates it. The error names the key and the layer at fault.
func Load(src Sources) (*Config, error) {
	known := Keys()
	k := koanf.New(".")

	if src.File != "" {
		parser, err := parserFor(src.File)
		if err != nil {
			return nil, err
		}
		if err := k.Load(file.Provider(src.File), parser); err != nil {
			return nil, fmt.Errorf("config file %s: %w", src.File, err)
		}
		if err := checkKeys(k, known, "config file "+src.File); err != nil {
			return nil, err
		}
	}

	env, err := envLayer(src.Env, known)
	if err != nil {
		return nil, err
	}
	for key, v := range env {
		if err := k.Set(key, v); err != nil {
			return nil, fmt.Errorf("environment %s: %w", envName(key), err)
		}
	}

	if src.Flags != nil {
		var ferr error
		src.Flags.Visit(func(f *pflag.Flag) {
			key := strings.ReplaceAll(f.Name, "-", "_")
			if _, ok := known[key]; !ok || ferr != nil {
				return
			}
			if err := k.Set(key, f.Value.String()); err != nil {
				ferr = fmt.Errorf("flag --%s: %w", f.Name, err)
			}
		})
		if ferr != nil {
			return nil, ferr
		}
	}

	cfg := Default()
	if err := decode(k, cfg); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func parserFor(path string) (koanf.Parser, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml":
		return yaml.Parser(), nil
	case ".toml":
		return toml.Parser(), nil
	case ".json":
		return json.Parser(), nil
	}
	return nil, fmt.Errorf("config file %s: unknown format %q (want .yaml, .yml, .toml or .json)", path, filepath.Ext(path))
}

// checkKeys rejects keys that are not config keys, naming the closest one.
func checkKeys(k *koanf.Koanf, known map[string]reflect.Type, layer string) error {
	var errs []error
	for _, key := range k.Keys() {
		if _, ok := known[key]; ok {
			continue
		}
		if isMapKey(key, known) {
			continue // checked when decoding into the map's value type
		}
		if _, ok := known[parentOf(key)]; ok {
			// A nested value under a scalar key: report the scalar.
			errs = append(errs, fmt.Errorf("%s: key %q: must be a single value, not a map", layer, parentOf(key)))
			continue
		}
		if sub := childrenOf(key, known); len(sub) > 0 {
			errs = append(errs, fmt.Errorf("%s: key %q is a section, not a single value (its keys: %s)", layer, key, strings.Join(sub, ", ")))
			continue
		}
		msg := fmt.Sprintf("%s: unknown key %q", layer, key)
		if s := closest(key, known); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		errs = append(errs, errors.New(msg))
	}
	return errors.Join(errs...)
}

// isMapKey reports whether key lies under a map-valued key (filters.NAME.…),
// whose sub-keys are checked by the decoder instead.
func isMapKey(key string, known map[string]reflect.Type) bool {
	for k, t := range known {
		if t.Kind() == reflect.Map && strings.HasPrefix(key, k+".") {
			return true
		}
	}
	return false
}

func childrenOf(key string, known map[string]reflect.Type) []string {
	var out []string
	for _, k := range sortedKeys(known) {
		if strings.HasPrefix(k, key+".") {
			out = append(out, k)
		}
	}
	return out
}

func parentOf(key string) string {
	if i := strings.LastIndexByte(key, '.'); i > 0 {
		return key[:i]
	}
	return ""
}

// envLayer maps SLUICE_ variables onto config keys.
func envLayer(environ []string, known map[string]reflect.Type) (map[string]string, error) {
	byEnv := make(map[string]string, len(known))
	for key := range known {
		byEnv[envName(key)] = key
	}
	out := map[string]string{}
	var errs []error
	for _, kv := range environ {
		name, val, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		key, ok := byEnv[name]
		if !ok {
			errs = append(errs, fmt.Errorf("environment %s: not a config key (keys: %s)", name, strings.Join(sortedKeys(known), ", ")))
			continue
		}
		out[key] = val
	}
	return out, errors.Join(errs...)
}

func envName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

func decode(k *koanf.Koanf, cfg *Config) error {
	dc := &mapstructure.DecoderConfig{
		DecodeHook:       durationHook,
		WeaklyTypedInput: true,
		ErrorUnused:      true,
		TagName:          "koanf",
	}
	if err := k.UnmarshalWithConf("", cfg, koanf.UnmarshalConf{DecoderConfig: dc}); err != nil {
		return keyErrors(err)
	}
	return nil
}

// keyErrors rewrites mapstructure's errors as one "config key K: …" line per
// key, leaving any other error as it is.
func keyErrors(err error) error {
	var out []error
	var walk func(error)
	walk = func(e error) {
		var de *mapstructure.DecodeError
		if errors.As(e, &de) && e == error(de) {
			out = append(out, fmt.Errorf("config key %s: %w", de.Name(), de.Unwrap()))
			return
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		default:
			out = append(out, fmt.Errorf("config: %w", e))
		}
	}
	walk(err)
	return errors.Join(out...)
}

var durationType = reflect.TypeOf(time.Duration(0))

// durationHook parses durations from strings ("5s", "1m30s") and refuses bare
// numbers, which would otherwise mean nanoseconds.
func durationHook(from, to reflect.Type, data any) (any, error) {
	if to != durationType {
		return data, nil
	}
	switch v := data.(type) {
	case string:
		d, err := time.ParseDuration(v)
		if err != nil {
			return nil, fmt.Errorf("%q is not a duration (want e.g. \"5s\", \"1m30s\")", v)
		}
		return d, nil
	case time.Duration:
		return v, nil
	}
	return nil, fmt.Errorf("%v is not a duration: write it with a unit, e.g. \"5s\"", data)
}

// Validate checks values that decode but make no sense. Errors name the key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key string, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config key %s: %s", key, fmt.Sprintf(format, args...)))
	}
	for key, addr := range map[string]string{"http_addr": c.HTTPAddr, "https_addr": c.HTTPSAddr, "admin_addr": c.AdminAddr} {
		if addr == "" {
			continue // listener disabled
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad(key, "%q is not host:port: %v", addr, err)
		}
	}
	if c.HTTPAddr == "" && c.HTTPSAddr == "" {
		bad("http_addr", "http_addr and https_addr are both empty: nothing would serve")
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "%q is not one of text, json", c.Log.Format)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Upstream.Balancer {
	case "round_robin", "least_request":
	default:
		bad("upstream.balancer", "%q is not one of round_robin, least_request", c.Upstream.Balancer)
	}
	for key, d := range map[string]time.Duration{
		"server.read_header_timeout": c.Server.ReadHeaderTimeout,
		"server.read_timeout":        c.Server.ReadTimeout,
		"server.write_timeout":       c.Server.WriteTimeout,
		"server.idle_timeout":        c.Server.IdleTimeout,
		"server.shutdown_timeout":    c.Server.ShutdownTimeout,
		"upstream.connect_timeout":   c.Upstream.ConnectTimeout,
		"upstream.response_timeout":  c.Upstream.ResponseTimeout,
	} {
		if d < 0 {
			bad(key, "%s is negative", d)
		}
	}
	if c.Server.ReadHeaderTimeout == 0 {
		bad("server.read_header_timeout", "must be set: without it one slow client can hold connections open forever")
	}
	if c.Server.MaxHeaderBytes < 4096 || c.Server.MaxHeaderBytes > 16<<20 {
		bad("server.max_header_bytes", "%d is outside 4096..16777216", c.Server.MaxHeaderBytes)
	}
	if c.IngressClass == "" {
		bad("ingress_class", "must not be empty")
	}
	c.TLS.validate(bad)
	c.RateLimit.validate(bad) // ratelimit.go
	c.validateObservability(bad)
	c.validateProxy(bad)
	errs = append(errs, c.validateFilters()...)
	errs = append(errs, c.validatePlugins()...)
	errs = append(errs, c.validateKube()...)
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errors.Join(errs...)
}

// Keys returns every config key ("upstream.connect_timeout") with its Go type.
func Keys() map[string]reflect.Type {
	out := map[string]reflect.Type{}
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name := f.Tag.Get("koanf")
			if name == "" {
				continue
			}
			key := prefix + name
			if f.Type.Kind() == reflect.Struct && f.Type != durationType {
				walk(key+".", f.Type)
				continue
			}
			out[key] = f.Type
		}
	}
	walk("", reflect.TypeOf(Config{}))
	return out
}

func sortedKeys(m map[string]reflect.Type) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// closest returns the known key nearest to key by edit distance, if close.
func closest(key string, known map[string]reflect.Type) string {
	best, bestD := "", 4
	for _, k := range sortedKeys(known) {
		if d := levenshtein(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
