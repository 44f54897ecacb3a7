package kube

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	informerscorev1 "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// secretSyncTimeout bounds how long a delivery waits for the watches of
// newly referenced Secrets to sync. After it, the delivery goes ahead and
// the Secret counts as missing until its watch syncs (which delivers again).
const secretSyncTimeout = 5 * time.Second

// secretWatchers runs one watch per referenced Secret
// (kube.secrets=referenced): a field selector on the Secret's name, so the
// gateway reads no other Secret.
type secretWatchers struct {
	s  *Source
	wg sync.WaitGroup

	mu      sync.Mutex
	watches map[nsName]*secretWatch
}

type secretWatch struct {
	informer cache.SharedIndexInformer
	stop     chan struct{}
}

func newSecretWatchers(s *Source) *secretWatchers {
	return &secretWatchers{s: s, watches: map[nsName]*secretWatch{}}
}

// update makes the watched set equal want (minus Secrets outside the
// watched namespace), then waits, up to secretSyncTimeout or ctx, until
// the new watches have synced.
func (w *secretWatchers) update(ctx context.Context, want map[nsName]bool) {
	var started []cache.InformerSynced
	w.mu.Lock()
	for k, sw := range w.watches {
		if !want[k] {
			close(sw.stop)
			delete(w.watches, k)
			w.s.health.forget(secretWatchName(k))
		}
	}
	for k := range want {
		if _, ok := w.watches[k]; ok {
			continue
		}
		if ns := w.s.opts.Namespace; ns != "" && k.ns != ns {
			continue // not watched; translate reports the Secret missing
		}
		sw := w.start(k)
		w.watches[k] = sw
		started = append(started, sw.informer.HasSynced)
	}
	w.mu.Unlock()
	if len(started) == 0 {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, secretSyncTimeout)
	defer cancel()
	if !cache.WaitForCacheSync(sctx.Done(), started...) && ctx.Err() == nil {
		w.s.log.Warn("referenced Secrets not synced in time; they count as missing until they are", "timeout", secretSyncTimeout)
	}
}

// start runs the watch of one Secret. Callers hold w.mu.
func (w *secretWatchers) start(k nsName) *secretWatch {
	selector := fields.OneTermEqualSelector("metadata.name", k.name).String()
	inf := informerscorev1.NewFilteredSecretInformer(w.s.client, k.ns, 0, cache.Indexers{}, func(o *metav1.ListOptions) {
		o.FieldSelector = selector
	})
	// Errors only come from a started informer; this one is not.
	_ = inf.SetTransform(dropManagedFields)
	client := w.s.client
	_ = inf.SetWatchErrorHandlerWithContext(w.s.health.watchErrorHandler(secretWatchName(k), func(ctx context.Context) error {
		_, err := client.CoreV1().Secrets(k.ns).Get(ctx, k.name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil // the server answers; the Secret does not exist
		}
		return err
	}))
	_, _ = inf.AddEventHandler(w.s.handler(func(any) bool { return true }))
	sw := &secretWatch{informer: inf, stop: make(chan struct{})}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		inf.Run(sw.stop)
	}()
	return sw
}

func secretWatchName(k nsName) string { return "Secret " + k.ns + "/" + k.name }

// stopAll stops every watch and waits for them to end.
func (w *secretWatchers) stopAll() {
	w.mu.Lock()
	for k, sw := range w.watches {
		close(sw.stop)
		delete(w.watches, k)
	}
	w.mu.Unlock()
	w.wg.Wait()
}

func (w *secretWatchers) get(ns, name string) *corev1.Secret {
	w.mu.Lock()
	sw := w.watches[nsName{ns, name}]
	w.mu.Unlock()
	if sw == nil {
		return nil
	}
	return indexerSecrets{sw.informer.GetIndexer()}.get(ns, name)
}

// list returns the watched Secrets that exist. Each watch's cache is read
// by the Secret's key, so a server that ignored the field selector could
// not leak other Secrets into the Input.
func (w *secretWatchers) list() []*corev1.Secret {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]*corev1.Secret, 0, len(w.watches))
	for k, sw := range w.watches {
		if sec := (indexerSecrets{sw.informer.GetIndexer()}).get(k.ns, k.name); sec != nil {
			out = append(out, sec)
		}
	}
	return out
}
