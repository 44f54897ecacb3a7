// Package redisstore is a wasm.Store backed by Redis: the token buckets and
// counters of the sluice extension shared by every gateway replica that
// uses the same Redis. A bucket is taken by one Lua script (atomic, on
// Redis's clock); a counter is INCRBY.
//
// When Redis cannot be reached, calls fail fast with ErrUnavailable (the
// guest sees sdk.ErrUnavailable and applies its own policy), further calls
// skip Redis for a short back-off, and the outage is logged once per
// LogInterval, not per request.
package redisstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluicegw/sluice/wasm"
)

// ErrUnavailable is returned (wrapped) while Redis cannot be reached.
var ErrUnavailable = errors.New("redis unavailable")

// Options configure a Store.
type Options struct {
	Addr     string // host:port
	Username string
	Password string
	DB       int
	// TLS, when set, connects with TLS.
	TLS *tls.Config
	// Timeout bounds each call (dial included). Default 100ms: a call runs
	// on the request path inside a guest call.
	Timeout time.Duration
	// Backoff is how long calls skip Redis after a connection failure.
	// Default 1s.
	Backoff time.Duration
	// LogInterval is the least time between two outage log lines.
	// Default 30s.
	LogInterval time.Duration
	// Prefix namespaces every key. Default "sluice:".
	Prefix string
	// Logger receives the outage and recovery lines. Default slog.Default().
	Logger *slog.Logger
}

// Store is a wasm.Store in Redis. It is safe for concurrent use; its
// methods block at most Options.Timeout.
type Store struct {
	opts   Options
	client *redis.Client
	script *redis.Script

	downUntil atomic.Int64 // unix ns: skip Redis until then

	mu       sync.Mutex
	down     bool      // in an outage (logged)
	lastLog  time.Time // last outage line
	failures int       // failures since lastLog
}

// takeScript is the token bucket: KEYS[1] the bucket, ARGV rate, period
// (ms) and burst. The bucket is a hash {tokens, ts (ms)} that expires once
// it would be full again. Returns {allowed, whole tokens left, retry ms}.
const takeScript = `
local rate = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1])
local ts = tonumber(b[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate / period)
  ts = now
end
local allowed = 0
local retry = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  retry = math.ceil((1 - tokens) * period / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', ts)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * period / rate) + 1000)
return {allowed, math.floor(tokens), retry}
`

// New returns a Store for opts. It does not connect: the first call does.
func New(opts Options) (*Store, error) {
	if opts.Addr == "" {
		return nil, errors.New("redisstore: address is required")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 100 * time.Millisecond
	}
	if opts.Backoff <= 0 {
		opts.Backoff = time.Second
	}
	if opts.LogInterval <= 0 {
		opts.LogInterval = 30 * time.Second
	}
	if opts.Prefix == "" {
		opts.Prefix = "sluice:"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	c := redis.NewClient(&redis.Options{
		Addr:         opts.Addr,
		Username:     opts.Username,
		Password:     opts.Password,
		DB:           opts.DB,
		TLSConfig:    opts.TLS,
		DialTimeout:  opts.Timeout,
		ReadTimeout:  opts.Timeout,
		WriteTimeout: opts.Timeout,
		MaxRetries:   -1, // fail fast: the request is waiting
		// The store is on the request path: no CLIENT SETINFO round trip.
		DisableIndentity: true,
	})
	return &Store{opts: opts, client: c, script: redis.NewScript(takeScript)}, nil
}

// Take implements wasm.Store.
func (s *Store) Take(ctx context.Context, key string, l wasm.Limit) (wasm.Decision, error) {
	if l.Rate <= 0 || l.Burst <= 0 || l.Period <= 0 {
		return wasm.Decision{}, fmt.Errorf("redisstore: invalid limit %+v", l)
	}
	if err := s.skip(); err != nil {
		return wasm.Decision{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	periodMS := max(1, l.Period.Milliseconds())
	// The limit is part of the key: a changed limit starts a new bucket,
	// as MemoryStore does.
	k := s.opts.Prefix + "rl:" + key + "|" + strconv.Itoa(l.Rate) + "/" + strconv.FormatInt(periodMS, 10) + "/" + strconv.Itoa(l.Burst)
	res, err := s.script.Run(ctx, s.client, []string{k}, l.Rate, periodMS, l.Burst).Int64Slice()
	if err != nil {
		return wasm.Decision{}, s.failed(err)
	}
	s.ok()
	if len(res) != 3 {
		return wasm.Decision{}, fmt.Errorf("redisstore: take %q: unexpected reply %v", key, res)
	}
	return wasm.Decision{Allowed: res[0] == 1, Remaining: int(res[1]), RetryAfter: time.Duration(res[2]) * time.Millisecond}, nil
}

// Add implements wasm.Store.
func (s *Store) Add(ctx context.Context, key string, delta int64) (int64, error) {
	if err := s.skip(); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	n, err := s.client.IncrBy(ctx, s.opts.Prefix+"ctr:"+key, delta).Result()
	if err != nil {
		return 0, s.failed(err)
	}
	s.ok()
	return n, nil
}

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	if err := s.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis %s: %w", s.opts.Addr, err)
	}
	return nil
}

// Close closes the connections. Safe to call on a Store never used.
func (s *Store) Close() error {
	return s.client.Close()
}

// skip fails fast during the back-off after a failure.
func (s *Store) skip() error {
	if until := s.downUntil.Load(); until != 0 && time.Now().UnixNano() < until {
		s.mu.Lock()
		s.failures++
		s.mu.Unlock()
		return fmt.Errorf("redis %s: %w", s.opts.Addr, ErrUnavailable)
	}
	return nil
}

// failed records a failed call: back-off, and an outage line at most once
// per LogInterval.
func (s *Store) failed(err error) error {
	now := time.Now()
	s.downUntil.Store(now.Add(s.opts.Backoff).UnixNano())
	s.mu.Lock()
	s.failures++
	if !s.down || now.Sub(s.lastLog) >= s.opts.LogInterval {
		s.opts.Logger.Warn("rate-limit store unavailable: filters apply their policy", "redis", s.opts.Addr, "err", err, "failed_calls", s.failures)
		s.down, s.lastLog, s.failures = true, now, 0
	}
	s.mu.Unlock()
	return fmt.Errorf("redis %s: %w: %v", s.opts.Addr, ErrUnavailable, err)
}

// ok ends an outage, with one line.
func (s *Store) ok() {
	s.downUntil.Store(0)
	s.mu.Lock()
	if s.down {
		s.opts.Logger.Info("rate-limit store available again", "redis", s.opts.Addr, "failed_calls", s.failures)
		s.down, s.failures = false, 0
	}
	s.mu.Unlock()
}

// Interface guards.
var _ wasm.Store = (*Store)(nil)
