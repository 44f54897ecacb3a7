package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRateLimitValidate(t *testing.T) {
	for _, tc := range []struct {
		r   Redis
		err string
	}{
		{Redis{}, ""},
		{Redis{Address: "127.0.0.1:6379", PasswordEnv: "REDIS_PASSWORD", TLS: true, CAFile: "ca.pem"}, ""},
		{Redis{Address: "redis"}, "ratelimit.redis.address"},
		{Redis{TLS: true}, "ratelimit.redis.address: must be set"},
		{Redis{Address: "r:6379", PasswordEnv: "A", PasswordFile: "f"}, "ratelimit.redis.password_env: set password_env or password_file"},
		{Redis{Address: "r:6379", PasswordEnv: "A-B"}, "ratelimit.redis.password_env"},
		{Redis{Address: "r:6379", DB: -1}, "ratelimit.redis.db"},
		{Redis{Address: "r:6379", CAFile: "ca.pem"}, "ratelimit.redis.tls"},
		{Redis{Address: "r:6379", Timeout: -1}, "ratelimit.redis.timeout"},
		{Redis{Address: "r:6379", LogInterval: -1}, "ratelimit.redis.log_interval"},
	} {
		var got []string
		(&RateLimit{Redis: tc.r}).validate(func(key, format string, args ...any) { got = append(got, key+": "+format) })
		if tc.err == "" && len(got) > 0 || tc.err != "" && (len(got) != 1 || !strings.HasPrefix(got[0], tc.err)) {
			t.Errorf("%+v: %q, want %q", tc.r, got, tc.err)
		}
	}
}

func TestRedisPassword(t *testing.T) {
	file := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SLUICE_TEST_REDIS_PASSWORD", "from-env")
	for _, tc := range []struct {
		r         Redis
		want, err string
	}{
		{Redis{}, "", ""},
		{Redis{PasswordEnv: "SLUICE_TEST_REDIS_PASSWORD"}, "from-env", ""},
		{Redis{PasswordEnv: "SLUICE_TEST_REDIS_NOPE"}, "", "SLUICE_TEST_REDIS_NOPE is not set"},
		{Redis{PasswordFile: file}, "from-file", ""},
		{Redis{PasswordFile: file + ".missing"}, "", "ratelimit.redis.password_file"},
	} {
		got, err := tc.r.Password()
		if got != tc.want || tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%+v: %q, %v; want %q, %q", tc.r, got, err, tc.want, tc.err)
		}
	}
}
