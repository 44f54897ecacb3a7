// Package wasm is Sluice's WebAssembly filter host: it loads http-wasm
// guest modules with wazero (one compiled module per content digest,
// shared by every route), keeps a bounded pool of pre-warmed instances per
// filter, enforces per-call deadlines and a memory cap, and exposes each
// filter as net/http middleware.
//
// The guest ABI is http-wasm's "http_handler" module plus Sluice's optional
// "sluice" module; sdk/ABI.md is the published contract.
//
// Wiring, in short:
//
//	host, err := wasm.NewHost(ctx, wasm.Config{CacheDir: dir, Logger: logger})
//	f, err := host.NewFilter(ctx, wasm.FilterSpec{
//		Name:   "team-auth",
//		Module: wasm.Source{URL: "https://…/auth.wasm", SHA256: "3f1c…"},
//		Config: []byte(`{"audience":"shop"}`),
//		Fail:   wasm.FailClosed,
//		Pool:   wasm.PoolConfig{Min: 2, Max: 16},
//	})
//	route := wasm.Chain(reverseProxy, f /*, more filters in order */)
//
// A Filter is immutable: to change a filter, build a new one, swap the
// route table, then Close the old one (after a short grace, so requests
// that loaded the old table still find it open). Filters with the same
// module digest share one compiled module. Close the Host last.
package wasm

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/sluicegw/sluice/wasm/internal/instrument"
	"github.com/sluicegw/sluice/wasm/internal/watchdog"
)

// Defaults of Config and FilterSpec.
const (
	DefaultMemoryLimitPages = 128 // 8 MiB: standard-Go guests with GOGC=25 reach ~70 pages under load
	DefaultTimeout          = time.Second
	DefaultDeadlineTick     = 5 * time.Millisecond
	DefaultMaxModuleBytes   = 64 << 20
	DefaultMaxBodyBytes     = 16 << 20
)

// Interrupt selects how a guest call that overruns its deadline is
// stopped. See RATIONALE.md ("Why fuel checks by default?").
type Interrupt int

const (
	// InterruptFuel (the default) rewrites every module at load so that
	// loop headers and calling functions count down a fuel global and,
	// every instrument.Fuel steps, leave native code and check a stop flag
	// the watchdog sets. The runtime runs without close-on-context-done:
	// a call costs tens of nanoseconds instead of about a microsecond.
	// Modules the rewriter does not understand fall back to
	// InterruptContext.
	InterruptFuel Interrupt = iota
	// InterruptContext uses wazero's close-on-context-done: the instance's
	// context is cancelled by the watchdog. Slower per call and per loop
	// iteration, but needs no rewriting.
	InterruptContext
)

// Config configures a Host. The zero value is usable.
type Config struct {
	// Interrupt selects the deadline mechanism; default InterruptFuel.
	Interrupt Interrupt
	// CacheDir, if set, holds wazero's on-disk compilation cache so that
	// restarts skip compilation. Created if missing.
	CacheDir string
	// MemoryLimitPages caps every guest's linear memory (64 KiB pages).
	MemoryLimitPages uint32
	// Timeout is the default per-call deadline of guest calls.
	Timeout time.Duration
	// DeadlineTick is the watchdog's scan period: a runaway call is
	// stopped between Timeout and Timeout+DeadlineTick (plus scheduling).
	DeadlineTick time.Duration
	// Logger receives guest logs and stdout/stderr, tagged with the filter
	// name. Default slog.Default().
	Logger *slog.Logger
	// Store backs sluice.rate_take and sluice.counter_add. Default: a new
	// MemoryStore.
	Store Store
	// Metrics receives sluice.metric_add. Default: NopMetrics.
	Metrics Metrics
	// HTTPClient fetches https:// modules. Default: a client with a 30 s
	// timeout.
	HTTPClient *http.Client
	// MaxModuleBytes bounds a module's size. Default 64 MiB.
	MaxModuleBytes int64
	// GuestEnv is the complete WASI environment of every guest. Nil means
	// {"GOGC": "25"}, which keeps standard-Go guests near 70 pages under load.
	GuestEnv map[string]string
}

// Host owns one wazero runtime, its host modules, the compiled modules and
// the deadline watchdog. It is safe for concurrent use.
type Host struct {
	rtFuel        wazero.Runtime // close-on-context-done off; nil with InterruptContext
	rtCtx         wazero.Runtime // close-on-context-done on
	cache         wazero.CompilationCache
	logger        *slog.Logger
	store         Store
	metrics       Metrics
	client        *http.Client
	timeout       time.Duration
	maxModule     int64
	memLimitBytes uint64
	env           map[string]string
	wd            *watchdog.Watchdog

	mu      sync.Mutex
	modules map[string]*module // by sha256 hex
	closed  bool
}

// module is a compiled module shared by every filter with its digest.
type module struct {
	digest  string
	rt      wazero.Runtime // the runtime cm belongs to
	fuel    bool           // instrumented: deadlines go through the stop global
	cm      wazero.CompiledModule
	reactor bool // exports _initialize (else: _start if exported)
	start   bool // exports _start
	refs    int
}

// NewHost creates the wazero runtime (compiler engine, close-on-context-
// done, memory cap), instantiates the WASI, http_handler and sluice host
// modules, and opens the compilation cache. Close releases everything.
func NewHost(ctx context.Context, cfg Config) (*Host, error) {
	if cfg.MemoryLimitPages == 0 {
		cfg.MemoryLimitPages = DefaultMemoryLimitPages
	}
	if cfg.MemoryLimitPages > 65536 {
		return nil, fmt.Errorf("wasm host: memory limit %d pages exceeds 65536", cfg.MemoryLimitPages)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.DeadlineTick <= 0 {
		cfg.DeadlineTick = DefaultDeadlineTick
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Store == nil {
		cfg.Store = NewMemoryStore()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NopMetrics{}
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.MaxModuleBytes <= 0 {
		cfg.MaxModuleBytes = DefaultMaxModuleBytes
	}
	if cfg.GuestEnv == nil {
		cfg.GuestEnv = map[string]string{"GOGC": "25"}
	}
	h := &Host{
		logger:        cfg.Logger,
		store:         cfg.Store,
		metrics:       cfg.Metrics,
		client:        cfg.HTTPClient,
		timeout:       cfg.Timeout,
		maxModule:     cfg.MaxModuleBytes,
		memLimitBytes: uint64(cfg.MemoryLimitPages) * 65536,
		env:           cfg.GuestEnv,
		wd:            watchdog.New(cfg.DeadlineTick),
		modules:       map[string]*module{},
	}
	rc := wazero.NewRuntimeConfigCompiler().WithMemoryLimitPages(cfg.MemoryLimitPages)
	if cfg.CacheDir != "" {
		c, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("wasm host: compilation cache %s: %w", cfg.CacheDir, err)
		}
		h.cache = c
		rc = rc.WithCompilationCache(c)
	}
	h.rtCtx = wazero.NewRuntimeWithConfig(ctx, rc.WithCloseOnContextDone(true))
	if err := setup(ctx, h.rtCtx); err != nil {
		_ = h.Close(ctx)
		return nil, err
	}
	if cfg.Interrupt == InterruptFuel {
		h.rtFuel = wazero.NewRuntimeWithConfig(ctx, rc.WithCloseOnContextDone(false))
		if err := setup(ctx, h.rtFuel); err != nil {
			_ = h.Close(ctx)
			return nil, err
		}
	}
	return h, nil
}

func setup(ctx context.Context, rt wazero.Runtime) error {
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		return fmt.Errorf("wasm host: wasi: %w", err)
	}
	if err := instantiateHostModule(ctx, rt, handlerModule, handlerFuncs); err != nil {
		return fmt.Errorf("wasm host: %w", err)
	}
	if err := instantiateHostModule(ctx, rt, sluiceModule, sluiceFuncs); err != nil {
		return fmt.Errorf("wasm host: %w", err)
	}
	return nil
}

// Close closes the runtime and every module and instance in it, and the
// compilation cache. Filters must be closed first; requests still using
// them fail. Close copes with a half-finished NewHost and is idempotent.
func (h *Host) Close(ctx context.Context) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	h.mu.Unlock()
	var errs []error
	for _, rt := range []wazero.Runtime{h.rtFuel, h.rtCtx} {
		if rt != nil {
			errs = append(errs, rt.Close(ctx))
		}
	}
	if h.cache != nil {
		errs = append(errs, h.cache.Close(ctx))
	}
	return errors.Join(errs...)
}

// Modules returns the number of compiled modules held (for tests and
// metrics).
func (h *Host) Modules() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.modules)
}

// rewriteModule instruments modules for InterruptFuel (a variable so tests
// can exercise the fallback).
var rewriteModule = instrument.Rewrite

// Source says where a module comes from. Exactly one of Path, URL and
// Bytes is set.
type Source struct {
	// Path is a local file (a "file://" URL is accepted too).
	Path string
	// URL is an https:// URL; SHA256 is then required.
	URL string
	// Bytes is the module itself (built-in filters).
	Bytes []byte
	// SHA256 is the expected digest (hex). Checked for every kind of
	// source when set; a mismatch refuses the module.
	SHA256 string
}

func (s Source) String() string {
	switch {
	case s.Path != "":
		return s.Path
	case s.URL != "":
		return s.URL
	}
	return fmt.Sprintf("<%d bytes>", len(s.Bytes))
}

// acquire returns the compiled module for src, compiling it at most once
// per digest, and takes a reference that release drops.
func (h *Host) acquire(ctx context.Context, name string, src Source) (*module, error) {
	want := strings.ToLower(src.SHA256)
	if want != "" {
		if _, err := hex.DecodeString(want); err != nil || len(want) != 64 {
			return nil, fmt.Errorf("filter %s: module %s: sha256 %q is not 64 hex digits", name, src, src.SHA256)
		}
		if m := h.ref(want); m != nil {
			return m, nil // already compiled: no fetch
		}
	}
	bin, err := h.fetch(ctx, src)
	if err != nil {
		return nil, fmt.Errorf("filter %s: module %s: %w", name, src, err)
	}
	sum := sha256.Sum256(bin)
	digest := hex.EncodeToString(sum[:])
	if want != "" && want != digest {
		return nil, fmt.Errorf("filter %s: module %s: sha256 mismatch: want %s, got %s", name, src, want, digest)
	}
	if m := h.ref(digest); m != nil {
		return m, nil
	}
	m := &module{digest: digest, rt: h.rtCtx}
	code := bin
	if h.rtFuel != nil {
		if out, err := rewriteModule(bin); err == nil {
			code, m.rt, m.fuel = out, h.rtFuel, true
		} else {
			h.logger.Warn("module not instrumented: using close-on-context-done", "filter", name, "module", src.String(), "err", err)
		}
	}
	cm, err := m.rt.CompileModule(ctx, code)
	if err != nil {
		return nil, fmt.Errorf("filter %s: module %s: compile: %w", name, src, err)
	}
	m.cm = cm
	if err := m.validate(h.memLimitBytes / 65536); err != nil {
		_ = cm.Close(ctx)
		return nil, fmt.Errorf("filter %s: module %s: %w", name, src, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		_ = cm.Close(ctx)
		return nil, fmt.Errorf("filter %s: host closed", name)
	}
	if old := h.modules[digest]; old != nil { // lost a race: use the winner
		_ = cm.Close(ctx)
		old.refs++
		return old, nil
	}
	m.refs = 1
	h.modules[digest] = m
	return m, nil
}

func (h *Host) ref(digest string) *module {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.modules[digest]
	if m != nil {
		m.refs++
	}
	return m
}

// release drops a reference; the last one closes the compiled module.
func (h *Host) release(m *module) {
	h.mu.Lock()
	m.refs--
	last := m.refs == 0
	if last {
		delete(h.modules, m.digest)
	}
	h.mu.Unlock()
	if last {
		_ = m.cm.Close(context.Background())
	}
}

func (h *Host) fetch(ctx context.Context, src Source) ([]byte, error) {
	n := 0
	for _, set := range []bool{src.Path != "", src.URL != "", src.Bytes != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, errors.New("exactly one of path, url and bytes must be set")
	}
	switch {
	case src.Bytes != nil:
		if int64(len(src.Bytes)) > h.maxModule {
			return nil, fmt.Errorf("module is %d bytes, limit %d", len(src.Bytes), h.maxModule)
		}
		return src.Bytes, nil
	case src.Path != "":
		p := strings.TrimPrefix(src.Path, "file://")
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return readLimited(f, h.maxModule)
	}
	u, err := url.Parse(src.URL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "https" {
		return nil, fmt.Errorf("url scheme %q: only https is allowed", u.Scheme)
	}
	if src.SHA256 == "" {
		return nil, errors.New("an https module needs its sha256")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.URL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch: status %s", resp.Status)
	}
	return readLimited(resp.Body, h.maxModule)
}

func readLimited(r io.Reader, limit int64) ([]byte, error) {
	var b bytes.Buffer
	if _, err := b.ReadFrom(io.LimitReader(r, limit+1)); err != nil {
		return nil, err
	}
	if int64(b.Len()) > limit {
		return nil, fmt.Errorf("module exceeds %d bytes", limit)
	}
	return b.Bytes(), nil
}

// validate refuses, at load, modules that could never work: missing or
// mistyped exports, imports Sluice does not provide, memory over the cap.
func (m *module) validate(maxPages uint64) error {
	var problems []string
	fns := m.cm.ExportedFunctions()
	check := func(name string, params, results []api.ValueType) {
		d, ok := fns[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("missing export %q", name))
			return
		}
		if !equalTypes(d.ParamTypes(), params) || !equalTypes(d.ResultTypes(), results) {
			problems = append(problems, fmt.Sprintf("export %q has type %s, want %s",
				name, sig(d.ParamTypes(), d.ResultTypes()), sig(params, results)))
		}
	}
	check("handle_request", nil, []api.ValueType{i64})
	check("handle_response", []api.ValueType{i32, i32}, nil)
	if _, ok := m.cm.ExportedMemories()["memory"]; !ok {
		problems = append(problems, `missing export "memory"`)
	}
	for _, mem := range m.cm.ExportedMemories() {
		if uint64(mem.Min()) > maxPages {
			problems = append(problems, fmt.Sprintf("memory needs %d pages, cap is %d", mem.Min(), maxPages))
		}
	}
	_, m.reactor = fns["_initialize"]
	_, m.start = fns["_start"]
	known := map[string]map[string]hostFunc{handlerModule: {}, sluiceModule: {}}
	for _, f := range handlerFuncs {
		known[handlerModule][f.name] = f
	}
	for _, f := range sluiceFuncs {
		known[sluiceModule][f.name] = f
	}
	for _, d := range m.cm.ImportedFunctions() {
		mod, name, _ := d.Import()
		if mod == wasi_snapshot_preview1.ModuleName {
			continue // wazero checks WASI names and types at instantiation
		}
		fs, ok := known[mod]
		if !ok {
			problems = append(problems, fmt.Sprintf("imports unknown module %q (function %q)", mod, name))
			continue
		}
		f, ok := fs[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("imports unknown function %s.%s", mod, name))
			continue
		}
		if !equalTypes(d.ParamTypes(), f.params) || !equalTypes(d.ResultTypes(), f.results) {
			problems = append(problems, fmt.Sprintf("import %s.%s has type %s, want %s",
				mod, name, sig(d.ParamTypes(), d.ResultTypes()), sig(f.params, f.results)))
		}
	}
	if len(problems) > 0 {
		return errors.New("not an http-wasm guest: " + strings.Join(problems, "; "))
	}
	return nil
}

func equalTypes(a, b []api.ValueType) bool { return bytes.Equal(a, b) }

func sig(params, results []api.ValueType) string {
	names := func(ts []api.ValueType) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = api.ValueTypeName(t)
		}
		return strings.Join(s, ", ")
	}
	return "(" + names(params) + ") -> (" + names(results) + ")"
}

// moduleConfig is the instantiation config of every instance of a filter:
// anonymous, no filesystem, no network, no args, only the host's
// environment (and the filter's, env), real clocks and randomness, stdout/stderr to the logger.
func (h *Host) moduleConfig(m *module, logger *slog.Logger, env map[string]string) wazero.ModuleConfig {
	c := wazero.NewModuleConfig().
		WithName("").
		WithSysWalltime().
		WithSysNanotime().
		WithRandSource(rand.Reader).
		WithStdout(&logWriter{logger: logger, stream: "stdout"}).
		WithStderr(&logWriter{logger: logger, stream: "stderr"})
	for k, v := range h.env {
		if _, over := env[k]; !over {
			c = c.WithEnv(k, v)
		}
	}
	for k, v := range env {
		c = c.WithEnv(k, v)
	}
	// Start functions are called by Filter.instantiate, under a deadline.
	c = c.WithStartFunctions()
	return c
}

// logWriter turns guest stdout/stderr writes into log records.
type logWriter struct {
	logger *slog.Logger
	stream string
}

func (w *logWriter) Write(p []byte) (int, error) {
	msg := strings.TrimRight(string(p), "\n")
	if msg != "" {
		w.logger.Info(msg, "stream", w.stream)
	}
	return len(p), nil
}
