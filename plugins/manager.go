package plugins

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
)

// Spec describes one plugin: the process to run and its limits.
type Spec struct {
	// Name identifies the plugin in config, annotations and logs.
	Name string
	// Command is the plugin binary: a path, or a name looked up in PATH.
	Command string
	Args    []string
	// Env is KEY=VALUE pairs. The process gets only these and PATH, HOME,
	// TMPDIR, TZ and LANG from the gateway: never the gateway's secrets.
	Env []string
	// Config is handed to Filter.Configure after every start (JSON).
	Config []byte
	Fail   FailPolicy
	// Timeout bounds each call, waiting for a free slot included.
	// Default DefaultTimeout.
	Timeout time.Duration
	// MaxConcurrent bounds the calls in flight to the process.
	// Default DefaultMaxConcurrent.
	MaxConcurrent int
}

// Defaults for Spec and Options fields left zero.
const (
	DefaultTimeout        = time.Second
	DefaultMaxConcurrent  = 64
	DefaultStartTimeout   = 10 * time.Second
	DefaultHealthInterval = 2 * time.Second
	DefaultBackoffMin     = 100 * time.Millisecond
	DefaultBackoffMax     = 30 * time.Second
)

// Options configure a Manager. Zero values take the defaults above.
type Options struct {
	Logger *slog.Logger // nil: discard
	// StartTimeout bounds a launch: exec, handshake and Configure.
	StartTimeout time.Duration
	// HealthInterval is how often a running plugin is pinged. A plugin
	// that does not answer within the interval is restarted. Exits are
	// noticed at once, whatever the interval.
	HealthInterval time.Duration
	// BackoffMin and BackoffMax bound the exponential wait between
	// restarts. The wait doubles after each failed or short-lived run and
	// resets once a run has lasted BackoffMax.
	BackoffMin, BackoffMax time.Duration
	// Grace is how long a replaced plugin may finish its calls in flight
	// before it is killed. Default 5 s.
	Grace time.Duration
	// SocketDir is where each process gets a private folder for its unix
	// socket, removed when the process ends (even by SIGKILL). Default
	// os.TempDir().
	SocketDir string
}

// Manager runs the plugins of the current config. Sync and Close must be
// called from one goroutine at a time (the gateway's control loop); Filter
// and the middlewares it returns are safe for concurrent use.
type Manager struct {
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	slots  map[string]*slot
	closed bool
	swept  bool           // stale socket folders removed
	wg     sync.WaitGroup // supervisors and delayed stops
}

// slot is a plugin name. Its current plugin changes when the spec or the
// binary changes; the route filters that use the name follow it.
type slot struct {
	name  string
	cur   atomic.Pointer[plugin] // nil once removed
	stats counters
}

// NewManager returns a Manager that runs nothing until Sync.
func NewManager(opts Options) *Manager {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = DefaultStartTimeout
	}
	if opts.HealthInterval <= 0 {
		opts.HealthInterval = DefaultHealthInterval
	}
	if opts.BackoffMin <= 0 {
		opts.BackoffMin = DefaultBackoffMin
	}
	if opts.BackoffMax < opts.BackoffMin {
		opts.BackoffMax = max(DefaultBackoffMax, opts.BackoffMin)
	}
	if opts.Grace <= 0 {
		opts.Grace = 5 * time.Second
	}
	return &Manager{opts: opts, log: opts.Logger, slots: map[string]*slot{}}
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$`)

// Sync makes the running plugins those of specs: it starts new ones,
// restarts those whose spec or binary (SHA-256) changed, and stops the
// ones no longer listed. It waits (up to ctx and Options.StartTimeout) for
// the first launch of every plugin it starts and returns one error per
// plugin that did not come up; such a plugin keeps retrying with backoff
// and its requests follow its failure policy meanwhile. A replaced plugin
// serves until its successor is up; if the successor's first launch fails,
// the successor is dropped and the previous process keeps serving.
func (m *Manager) Sync(ctx context.Context, specs []Spec) []error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return []error{errors.New("plugins: manager is closed")}
	}
	if !m.swept {
		m.swept = true
		m.sweepSockets()
	}
	var errs []error
	want := map[string]bool{}
	type started struct {
		s   *slot
		old *plugin
		p   *plugin
	}
	var starts []started
	for _, spec := range specs {
		spec = withDefaults(spec)
		if err := checkSpec(spec); err != nil {
			errs = append(errs, err)
			continue
		}
		if want[spec.Name] {
			errs = append(errs, fmt.Errorf("plugin %s: listed twice", spec.Name))
			continue
		}
		want[spec.Name] = true
		path, sum, err := binary(spec.Command)
		if err != nil {
			errs = append(errs, fmt.Errorf("plugin %s: %w", spec.Name, err))
			// Keep a running one rather than lose it to a bad edit.
			continue
		}
		s := m.slots[spec.Name]
		if s == nil {
			s = &slot{name: spec.Name}
			m.slots[spec.Name] = s
		}
		old := s.cur.Load()
		if old != nil && old.sum == sum && reflect.DeepEqual(old.spec, spec) {
			continue
		}
		reason := "started"
		if old != nil {
			reason = "config changed"
			if old.sum != sum {
				reason = "binary changed"
			}
		}
		p := m.newPlugin(s, spec, path, sum)
		m.log.Info("plugin starting", "plugin", spec.Name, "reason", reason, "command", path, "sha256", sum[:12])
		m.wg.Add(1)
		go p.run()
		starts = append(starts, started{s, old, p})
	}
	for _, st := range starts {
		var err error
		select {
		case err = <-st.p.first:
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err != nil && st.old != nil {
			// Keep what works: the previous process serves on.
			st.p.stop()
			errs = append(errs, fmt.Errorf("plugin %s: the new version did not start; the previous one keeps serving: %w", st.p.spec.Name, err))
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("plugin %s: %w", st.p.spec.Name, err))
		}
		st.s.cur.Store(st.p)
		if st.old != nil {
			m.retire(st.old)
		}
	}
	for name, s := range m.slots {
		if want[name] {
			continue
		}
		if p := s.cur.Swap(nil); p != nil {
			m.log.Info("plugin removed from config; stopping", "plugin", name)
			p.stop()
		}
		delete(m.slots, name)
	}
	return errs
}

// retire stops p once its calls in flight are done, or after Grace.
func (m *Manager) retire(p *plugin) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		deadline := time.Now().Add(m.opts.Grace)
		for len(p.sem) > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		p.stop()
	}()
}

// Close stops every plugin and kills its process group, then waits for
// the supervisors to end. Calls in flight fail by their policy. Close is
// idempotent and safe on a Manager that never synced.
func (m *Manager) Close() {
	m.mu.Lock()
	if !m.closed {
		m.closed = true
		for name, s := range m.slots {
			if p := s.cur.Swap(nil); p != nil {
				p.stop()
			}
			delete(m.slots, name)
		}
	}
	m.mu.Unlock()
	m.wg.Wait()
}

// Names returns the configured plugin names, sorted.
func (m *Manager) Names() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.slots))
	for n := range m.slots {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// PID returns the process id of the running plugin name, or 0 when it is
// down or unknown.
func (m *Manager) PID(name string) int {
	m.mu.Lock()
	s := m.slots[name]
	m.mu.Unlock()
	if s == nil {
		return 0
	}
	if p := s.cur.Load(); p != nil {
		if pr := p.proc.Load(); pr != nil {
			return pr.pid
		}
	}
	return 0
}

func withDefaults(s Spec) Spec {
	if s.Timeout <= 0 {
		s.Timeout = DefaultTimeout
	}
	if s.MaxConcurrent <= 0 {
		s.MaxConcurrent = DefaultMaxConcurrent
	}
	return s
}

func checkSpec(s Spec) error {
	if !nameRE.MatchString(s.Name) {
		return fmt.Errorf("plugin %q: the name must be lowercase letters, digits, '.', '_' or '-' (1-63)", s.Name)
	}
	if s.Command == "" {
		return fmt.Errorf("plugin %s: command is required", s.Name)
	}
	return nil
}

// binary resolves command and hashes the file.
func binary(command string) (path, sum string, err error) {
	path, err = exec.LookPath(command)
	if err != nil {
		return "", "", fmt.Errorf("command %q: %w", command, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", "", fmt.Errorf("command %q: %w", command, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", "", fmt.Errorf("command %q: read: %w", command, err)
	}
	return path, hex.EncodeToString(h.Sum(nil)), nil
}

// plugin is one spec and binary, run by its supervisor goroutine through
// any number of process restarts.
type plugin struct {
	m    *Manager
	slot *slot
	spec Spec
	path string
	sum  string
	log  *slog.Logger

	sem   chan struct{}        // calls in flight
	proc  atomic.Pointer[proc] // nil while down
	first chan error           // the first launch's result, buffered
	quit  chan struct{}        // closed by stop
	once  sync.Once
}

// proc is one running process.
type proc struct {
	client  *goplugin.Client
	f       Filter
	pid     int
	sockDir string // removed by kill
}

func (m *Manager) newPlugin(s *slot, spec Spec, path, sum string) *plugin {
	return &plugin{
		m: m, slot: s, spec: spec, path: path, sum: sum,
		log:   m.log.With("plugin", spec.Name),
		sem:   make(chan struct{}, spec.MaxConcurrent),
		first: make(chan error, 1),
		quit:  make(chan struct{}),
	}
}

// stop ends the supervisor, which kills the process. It does not wait.
func (p *plugin) stop() { p.once.Do(func() { close(p.quit) }) }

// run is the supervisor: launch, watch, restart with backoff, until stop.
func (p *plugin) run() {
	defer p.m.wg.Done()
	backoff := p.m.opts.BackoffMin
	firstDone := false
	for {
		pr, err := p.launch()
		if err == nil {
			p.proc.Store(pr) // before Sync hears of it: it serves from now
		}
		if !firstDone {
			p.first <- err
			firstDone = true
		}
		if err != nil {
			p.log.Error("plugin failed to start", "error", err, "retry_in", backoff)
		} else {
			began := time.Now()
			p.log.Info("plugin running", "pid", pr.pid)
			reason := p.watch(pr)
			p.proc.Store(nil)
			p.kill(pr, reason == "")
			if reason == "" { // stopped
				p.log.Info("plugin stopped", "pid", pr.pid)
				return
			}
			if time.Since(began) >= p.m.opts.BackoffMax {
				backoff = p.m.opts.BackoffMin
			}
			p.slot.stats.restarts.Add(1)
			p.log.Warn("plugin down; restarting", "pid", pr.pid, "reason", reason, "retry_in", backoff)
		}
		select {
		case <-p.quit:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, p.m.opts.BackoffMax)
	}
}

// watch returns why the process must be replaced, or "" when stopped.
func (p *plugin) watch(pr *proc) string {
	exit := time.NewTicker(25 * time.Millisecond)
	defer exit.Stop()
	health := time.NewTicker(p.m.opts.HealthInterval)
	defer health.Stop()
	for {
		select {
		case <-p.quit:
			return ""
		case <-exit.C:
			if pr.client.Exited() {
				return "process exited"
			}
		case <-health.C:
			if err := p.ping(pr); err != nil {
				return "health check failed: " + err.Error()
			}
		}
	}
}

// ping checks the process answers within the health interval.
func (p *plugin) ping(pr *proc) error {
	rpc, err := pr.client.Client()
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- rpc.Ping() }() // ends at the latest when the process is killed
	select {
	case err := <-done:
		return err
	case <-time.After(p.m.opts.HealthInterval):
		return fmt.Errorf("no answer within %s", p.m.opts.HealthInterval)
	case <-p.quit:
		return nil
	}
}

// launch starts one process and configures it.
func (p *plugin) launch() (*proc, error) {
	// A private socket folder: a killed plugin cannot remove its socket,
	// so the folder is removed for it.
	sockDir, err := os.MkdirTemp(p.m.opts.SocketDir, fmt.Sprintf("%s%d-", socketPrefix, os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("socket folder: %w", err)
	}
	cmd := exec.Command(p.path, p.spec.Args...)
	cmd.Env = append(pluginEnv(p.spec.Env), goplugin.EnvUnixSocketDir+"="+sockDir)
	setProcAttr(cmd)
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  Handshake,
		Plugins:          PluginMap(nil),
		Cmd:              cmd,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		AutoMTLS:         true,
		SkipHostEnv:      true,
		StartTimeout:     p.m.opts.StartTimeout,
		Logger:           newHCLog(p.m.log, p.spec.Name),
		SyncStdout:       &logWriter{log: p.log, stream: "stdout"},
		SyncStderr:       &logWriter{log: p.log, stream: "stderr"},
	})
	pr := &proc{client: client, sockDir: sockDir}
	fail := func(err error) (*proc, error) {
		p.kill(pr, false)
		return nil, err
	}
	rpc, err := client.Client()
	if cmd.Process != nil {
		pr.pid = cmd.Process.Pid
	}
	if err != nil {
		return fail(fmt.Errorf("launch %s: %w", p.path, err))
	}
	raw, err := rpc.Dispense(PluginName)
	if err != nil {
		return fail(fmt.Errorf("dispense: %w", err))
	}
	f, ok := raw.(Filter)
	if !ok {
		return fail(fmt.Errorf("dispense: got %T, want a Filter", raw))
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.m.opts.StartTimeout)
	defer cancel()
	if err := f.Configure(ctx, p.spec.Name, p.spec.Config); err != nil {
		return fail(fmt.Errorf("configure: %w", err))
	}
	pr.f = f
	return pr, nil
}

// killWait bounds go-plugin's graceful kill, which itself waits 2 s for
// the process to exit but blocks for ever on a process that accepts the
// connection and never answers (stopped, deadlocked).
const killWait = 3 * time.Second

// kill ends the process, gracefully if it answers and graceful is set,
// then kills whatever is left of its process group: children it started
// included. It always returns, within killWait plus the kill.
func (p *plugin) kill(pr *proc, graceful bool) {
	if !graceful && pr.pid > 0 {
		killGroup(pr.pid) // unhealthy: no goodbye
	}
	done := make(chan struct{})
	go func() {
		pr.client.Kill()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(killWait):
		p.log.Warn("plugin did not stop in time; killing it", "pid", pr.pid)
		if pr.pid > 0 {
			killGroup(pr.pid) // its connection breaks, and Kill returns
		}
		<-done
	}
	if pr.pid > 0 {
		killGroup(pr.pid)
	}
	if err := os.RemoveAll(pr.sockDir); err != nil {
		p.log.Warn("could not remove the plugin's socket folder", "dir", pr.sockDir, "error", err)
	}
}

// socketPrefix starts the socket folders: sluice-plugin-GATEWAYPID-RANDOM.
const socketPrefix = "sluice-plugin-"

// sweepSockets removes the socket folders of gateways that are gone: a
// gateway killed with SIGKILL cannot remove its own (its plugins die with
// it through the parent-death signal).
func (m *Manager) sweepSockets() {
	dir := m.opts.SocketDir
	if dir == "" {
		dir = os.TempDir()
	}
	matches, _ := filepath.Glob(filepath.Join(dir, socketPrefix+"*"))
	for _, d := range matches {
		rest := strings.TrimPrefix(filepath.Base(d), socketPrefix)
		pidStr, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		if err := os.RemoveAll(d); err == nil {
			m.log.Info("removed a stale plugin socket folder", "dir", d)
		}
	}
}

// pluginEnv is the environment of a plugin process.
func pluginEnv(extra []string) []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "TZ", "LANG"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return append(env, extra...)
}
