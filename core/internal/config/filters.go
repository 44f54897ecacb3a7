package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Filter is a filter defined once in the config file under a name of the
// operator's choosing (filters.NAME), which annotations then reference by
// name alone.
type Filter struct {
	// Module is a path (relative to the config file's folder, or absolute),
	// a file:// or https:// URL, or builtin:NAME.
	Module string `koanf:"module"`
	SHA256 string `koanf:"sha256"`
	// Config is the filter's config, passed to the guest as JSON; a route's
	// annotation may replace it.
	Config map[string]any `koanf:"config"`
	Fail   string         `koanf:"fail"` // closed (default) | open
	Pool   FilterPool     `koanf:"pool"`
	// Timeout is the per-call deadline; 0 uses wasm.timeout.
	Timeout time.Duration `koanf:"timeout"`
}

// FilterPool sizes a filter's instance pool; zero values take the host's
// defaults.
type FilterPool struct {
	Min *int `koanf:"min"` // nil: 1 (one warm instance); 0 allows cold starts
	Max int  `koanf:"max"`
}

// Wasm configures the filter host.
type Wasm struct {
	// CacheDir holds the compiled modules so restarts skip compilation;
	// empty disables the on-disk cache.
	CacheDir string `koanf:"cache_dir"`
	// Timeout is the default per-call deadline of a filter.
	Timeout time.Duration `koanf:"timeout"`
	// MemoryLimitPages caps each guest's memory (64 KiB pages).
	MemoryLimitPages uint32 `koanf:"memory_limit_pages"`
}

// MinOrDefault is Min, or 1 when unset: one warm instance, so the first
// request pays no instantiation.
func (p FilterPool) MinOrDefault() int {
	if p.Min == nil {
		return 1
	}
	return *p.Min
}

var filterNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$`)

// checkEntryName checks the name of a filters.NAME or plugins.NAME entry:
// routes reference it from the sluice.io/filters annotation.
func checkEntryName(key, name string) error {
	if !filterNameRE.MatchString(name) {
		return fmt.Errorf("config key %s: the name must be lowercase letters, digits, '.', '_' or '-' (1-63)", key)
	}
	return nil
}

func (c *Config) validateFilters() []error {
	var errs []error
	for _, n := range slices.Sorted(maps.Keys(c.Filters)) {
		f := c.Filters[n]
		key := "filters." + n
		bad := func(field, format string, args ...any) {
			errs = append(errs, fmt.Errorf("config key %s.%s: %s", key, field, fmt.Sprintf(format, args...)))
		}
		if err := checkEntryName(key, n); err != nil {
			errs = append(errs, err)
		}
		if f.Module == "" {
			bad("module", "required")
		}
		if strings.HasPrefix(f.Module, "http://") {
			bad("module", "%q: plain http is refused; use https:// with sha256", f.Module)
		}
		if strings.HasPrefix(f.Module, "https://") && f.SHA256 == "" {
			bad("sha256", "required for an https:// module")
		}
		if f.SHA256 != "" {
			if b, err := hex.DecodeString(f.SHA256); err != nil || len(b) != 32 {
				bad("sha256", "%q is not 64 hex digits", f.SHA256)
			}
		}
		switch f.Fail {
		case "", "closed", "open":
		default:
			bad("fail", "%q is not closed or open", f.Fail)
		}
		if min := f.Pool.MinOrDefault(); min < 0 || f.Pool.Max < 0 || (f.Pool.Max > 0 && min > f.Pool.Max) {
			bad("pool", "min %d, max %d: want 0 <= min <= max", min, f.Pool.Max)
		}
		if f.Timeout < 0 {
			bad("timeout", "%s is negative", f.Timeout)
		}
	}
	if c.Wasm.Timeout <= 0 {
		errs = append(errs, errors.New("config key wasm.timeout: must be positive"))
	}
	if c.Wasm.MemoryLimitPages < 1 || c.Wasm.MemoryLimitPages > 65536 {
		errs = append(errs, fmt.Errorf("config key wasm.memory_limit_pages: %d is outside 1..65536", c.Wasm.MemoryLimitPages))
	}
	return errs
}
