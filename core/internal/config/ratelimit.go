package config

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// RateLimit configures the state behind the filters' token buckets and
// counters (the sluice extension's rate_take and counter_add), under the
// ratelimit key. Without redis, buckets are per replica.
type RateLimit struct {
	Redis Redis `koanf:"redis"`
}

// Redis is the Redis that makes rate limits global across replicas. It is
// read when the first filter is loaded: a change takes effect at the next
// restart.
type Redis struct {
	// Address is host:port; empty keeps buckets in the process.
	Address  string `koanf:"address"`
	Username string `koanf:"username"`
	// PasswordEnv names an environment variable holding the password;
	// PasswordFile a file (e.g. a mounted Secret) holding it. At most one.
	PasswordEnv  string `koanf:"password_env"`
	PasswordFile string `koanf:"password_file"`
	DB           int    `koanf:"db"`
	// TLS connects with TLS, verifying the server against CAFile (PEM)
	// or the system roots, for ServerName (default the address's host).
	TLS        bool   `koanf:"tls"`
	CAFile     string `koanf:"ca_file"`
	ServerName string `koanf:"server_name"`
	// Timeout bounds each Redis call (default 100ms); LogInterval is the
	// least time between two "unavailable" log lines (default 30s).
	Timeout     time.Duration `koanf:"timeout"`
	LogInterval time.Duration `koanf:"log_interval"`
}

// Password reads the password from PasswordEnv or PasswordFile ("" when
// neither is set).
func (r Redis) Password() (string, error) {
	switch {
	case r.PasswordEnv != "":
		v, ok := os.LookupEnv(r.PasswordEnv)
		if !ok {
			return "", fmt.Errorf("config key ratelimit.redis.password_env: environment variable %s is not set", r.PasswordEnv)
		}
		return v, nil
	case r.PasswordFile != "":
		b, err := os.ReadFile(r.PasswordFile)
		if err != nil {
			return "", fmt.Errorf("config key ratelimit.redis.password_file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return "", nil
}

func (r *RateLimit) validate(bad func(key, format string, args ...any)) {
	rd := r.Redis
	if rd.Address == "" {
		if rd.TLS || rd.PasswordEnv != "" || rd.PasswordFile != "" || rd.Username != "" {
			bad("ratelimit.redis.address", "must be set when other ratelimit.redis keys are")
		}
		return
	}
	if _, _, err := net.SplitHostPort(rd.Address); err != nil {
		bad("ratelimit.redis.address", "%q is not host:port: %v", rd.Address, err)
	}
	if rd.PasswordEnv != "" && rd.PasswordFile != "" {
		bad("ratelimit.redis.password_env", "set password_env or password_file, not both")
	}
	if rd.PasswordEnv != "" && !envNameRE.MatchString(rd.PasswordEnv) {
		bad("ratelimit.redis.password_env", "%q is not an environment variable name", rd.PasswordEnv)
	}
	if rd.DB < 0 {
		bad("ratelimit.redis.db", "%d is negative", rd.DB)
	}
	if !rd.TLS && (rd.CAFile != "" || rd.ServerName != "") {
		bad("ratelimit.redis.tls", "ca_file and server_name need tls: true")
	}
	if rd.Timeout < 0 {
		bad("ratelimit.redis.timeout", "%s is negative", rd.Timeout)
	}
	if rd.LogInterval < 0 {
		bad("ratelimit.redis.log_interval", "%s is negative", rd.LogInterval)
	}
}
