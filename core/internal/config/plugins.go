package config

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"time"
)

// Plugin is a native plugin filter (package plugins) defined under
// plugins.NAME. A route references it by that name in its sluice.io/filters
// chain, like a named filter; a name may not be both a filter and a plugin.
type Plugin struct {
	// Command is the plugin binary: a path (relative to the config file's
	// folder, or absolute) or a bare name looked up in PATH.
	Command string   `koanf:"command"`
	Args    []string `koanf:"args"`
	// Env is added to the plugin's environment, which otherwise holds only
	// PATH, HOME, TMPDIR, TZ and LANG.
	Env map[string]string `koanf:"env"`
	// Config is handed to the plugin (as JSON) after every start.
	Config map[string]any `koanf:"config"`
	Fail   string         `koanf:"fail"` // closed (default) | open
	// Timeout bounds each call to the plugin; 0 means 1s.
	Timeout time.Duration `koanf:"timeout"`
	// MaxConcurrent bounds the calls in flight to the plugin; 0 means 64.
	MaxConcurrent int `koanf:"max_concurrent"`
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (c *Config) validatePlugins() []error {
	var errs []error
	for _, n := range slices.Sorted(maps.Keys(c.Plugins)) {
		p := c.Plugins[n]
		key := "plugins." + n
		bad := func(field, format string, args ...any) {
			errs = append(errs, fmt.Errorf("config key %s.%s: %s", key, field, fmt.Sprintf(format, args...)))
		}
		if err := checkEntryName(key, n); err != nil {
			errs = append(errs, err)
		}
		if _, ok := c.Filters[n]; ok {
			errs = append(errs, fmt.Errorf("config key %s: filters.%s has the same name: a route could not tell which one it means", key, n))
		}
		if p.Command == "" {
			bad("command", "required")
		}
		for _, k := range slices.Sorted(maps.Keys(p.Env)) {
			if !envNameRE.MatchString(k) {
				bad("env", "%q is not an environment variable name", k)
			}
		}
		switch p.Fail {
		case "", "closed", "open":
		default:
			bad("fail", "%q is not closed or open", p.Fail)
		}
		if p.Timeout < 0 {
			bad("timeout", "%s is negative", p.Timeout)
		}
		if p.MaxConcurrent < 0 {
			bad("max_concurrent", "%d is negative", p.MaxConcurrent)
		}
	}
	return errs
}
