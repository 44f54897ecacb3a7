package kube

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// probeTimeout bounds one probe request.
const probeTimeout = 5 * time.Second

// serverWatch is the name of the API server's own entry in health.failing.
const serverWatch = "API server"

// health tracks whether the API server answers and which watches fail.
//
// Why probe instead of waiting for the informers: client-go's reflectors
// retry on their own, with a backoff, and tell nobody. A re-established
// watch that meets "connection refused" is retried inside the reflector
// without reaching the watch error handler at all, so an API server that
// is down is only seen by asking it: the server's version every probe
// interval (one small request). A watch that fails for another reason (a
// list refused by RBAC, say) is reported by the watch error handler and
// probed with the same permissions (a list of one object) until it works.
type health struct {
	log *slog.Logger

	mu      sync.Mutex
	failing map[string]*failure // by watch name ("Ingress", "Secret shop/tls")
	kick    chan struct{}
}

type failure struct {
	err   error
	since time.Time
	probe func(context.Context) error
}

func (h *health) init(log *slog.Logger) {
	h.log = log
	h.failing = map[string]*failure{}
	h.kick = make(chan struct{}, 1)
}

// watchErrorHandler returns the informer's watch error handler for the watch
// called name; probe must succeed exactly when that watch could.
func (h *health) watchErrorHandler(name string, probe func(context.Context) error) cache.WatchErrorHandlerWithContext {
	return func(_ context.Context, _ *cache.Reflector, err error) { h.fail(name, err, probe) }
}

func (h *health) fail(name string, err error, probe func(context.Context) error) {
	h.mu.Lock()
	f := h.failing[name]
	first := f == nil
	if first {
		f = &failure{since: time.Now(), probe: probe}
		h.failing[name] = f
	}
	f.err = err
	h.mu.Unlock()
	if first {
		h.log.Warn("kube api server problem; serving the last routes until it answers", "watch", name, "error", err)
	}
	if name == serverWatch {
		return // the probe loop itself reported it
	}
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// forget drops a watch that no longer exists (a Secret no longer
// referenced).
func (h *health) forget(name string) {
	h.mu.Lock()
	delete(h.failing, name)
	h.mu.Unlock()
}

// degraded describes the first failing watch, or returns "".
func (h *health) degraded() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.failing) == 0 {
		return ""
	}
	name := sortedKeys(h.failing)[0]
	err := h.failing[name].err
	more := ""
	if n := len(h.failing); n > 1 {
		more = fmt.Sprintf(" and %d more", n-1)
	}
	switch {
	case name == serverWatch:
		return fmt.Sprintf("api server unreachable%s: %v", more, err)
	case apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err):
		return fmt.Sprintf("api server refuses the %s watch%s: %v", name, more, err)
	}
	return fmt.Sprintf("api server unreachable: %s watch%s: %v", name, more, err)
}

// probeLoop asks the server for its version every interval, and probes
// the failing watches then (and at once when one fails). It returns when
// ctx is done.
func (h *health) probeLoop(ctx context.Context, interval time.Duration, server func(context.Context) error) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.kick:
		case <-tick.C:
			pctx, cancel := context.WithTimeout(ctx, min(probeTimeout, 2*interval))
			err := server(pctx)
			cancel()
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				h.fail(serverWatch, err, server)
			} else {
				h.recovered(serverWatch, nil)
			}
		}
		h.probeWatches(ctx)
	}
}

// probeWatches probes each failing watch once and forgets those that
// answer. The API server's own entry is left to probeLoop.
func (h *health) probeWatches(ctx context.Context) {
	h.mu.Lock()
	probes := make(map[string]*failure, len(h.failing))
	for k, f := range h.failing {
		if k != serverWatch {
			probes[k] = f
		}
	}
	h.mu.Unlock()
	for _, name := range sortedKeys(probes) {
		f := probes[name]
		pctx, cancel := context.WithTimeout(ctx, probeTimeout)
		err := f.probe(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			h.recovered(name, f)
			continue
		}
		h.mu.Lock()
		f.err = err
		h.mu.Unlock()
	}
}

// recovered forgets the failure of name (only if it is still f, when f is
// not nil) and logs the recovery.
func (h *health) recovered(name string, f *failure) {
	h.mu.Lock()
	cur := h.failing[name]
	if cur == nil || (f != nil && cur != f) {
		h.mu.Unlock()
		return
	}
	delete(h.failing, name)
	h.mu.Unlock()
	h.log.Info("kube api server answers again", "watch", name, "down", time.Since(cur.since).Round(time.Millisecond))
}

// probeList returns a probe for the watch of kind: a list of at most one
// object, with the permissions the watch needs.
func (s *Source) probeList(kind string) func(context.Context) error {
	ns := s.opts.Namespace
	one := metav1.ListOptions{Limit: 1}
	c := s.client
	return func(ctx context.Context) error {
		var err error
		switch kind {
		case "Ingress":
			_, err = c.NetworkingV1().Ingresses(ns).List(ctx, one)
		case "IngressClass":
			_, err = c.NetworkingV1().IngressClasses().List(ctx, one)
		case "Service":
			_, err = c.CoreV1().Services(ns).List(ctx, one)
		case "EndpointSlice":
			_, err = c.DiscoveryV1().EndpointSlices(ns).List(ctx, one)
		case "Secret":
			_, err = c.CoreV1().Secrets(ns).List(ctx, one)
		default:
			err = fmt.Errorf("no probe for %s", kind)
		}
		return err
	}
}
