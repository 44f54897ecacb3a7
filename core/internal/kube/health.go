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

// health tracks the watches that failed and probes them until the API
// server answers again.
//
// Why probe instead of waiting for the informers: client-go's reflectors
// retry on their own, with a backoff, and tell nobody when they succeed. A
// failed watch marks its kind degraded at once (the watch error handler);
// a cheap probe with the same permissions (a list of one object) clears it
// when the server answers. Nothing is probed while every watch is healthy.
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
		h.log.Warn("kube watch failed; serving the last routes until the api server answers", "watch", name, "error", err)
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
	if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
		return fmt.Sprintf("api server refuses the %s watch%s: %v", name, more, err)
	}
	return fmt.Sprintf("api server unreachable: %s watch%s: %v", name, more, err)
}

// probeLoop probes the failing watches every interval until each succeeds,
// and sleeps while none fails. It returns when ctx is done.
func (h *health) probeLoop(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		h.mu.Lock()
		n := len(h.failing)
		h.mu.Unlock()
		if n == 0 {
			select {
			case <-ctx.Done():
				return
			case <-h.kick:
			}
		} else {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
		h.probeAll(ctx)
	}
}

// probeAll probes each failing watch once and forgets those that answer.
func (h *health) probeAll(ctx context.Context) {
	h.mu.Lock()
	probes := make(map[string]*failure, len(h.failing))
	for k, f := range h.failing {
		probes[k] = f
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
		h.mu.Lock()
		recovered := false
		if cur := h.failing[name]; cur == f {
			if err == nil {
				delete(h.failing, name)
				recovered = true
			} else {
				f.err = err
			}
		}
		h.mu.Unlock()
		if recovered {
			h.log.Info("kube api server answers again", "watch", name, "down", time.Since(f.since).Round(time.Millisecond))
		}
	}
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
