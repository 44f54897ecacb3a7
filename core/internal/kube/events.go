package kube

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluicegw/sluice/core/internal/model"
)

// EventReason is the reason of every Warning Event the gateway records.
const EventReason = "InvalidConfiguration"

// ReportingController is the reportingComponent of recorded Events.
const ReportingController = "sluice.io/ingress-controller"

const (
	eventQueueLen     = 256
	eventTimeout      = 10 * time.Second
	maxEventMessage   = 1024 // bytes; longer messages are cut
	maxEventNameStart = 200  // bytes of the object name in the Event name
)

// eventRecorder turns warnings into Events, each distinct warning once.
type eventRecorder struct {
	s     *Source
	queue chan model.Warning
	host  string

	mu       sync.Mutex
	reported map[model.Warning]bool // the warnings of the last Report
	dropped  int
}

func (r *eventRecorder) init(s *Source) {
	r.s = s
	r.queue = make(chan model.Warning, eventQueueLen)
	r.reported = map[model.Warning]bool{}
	r.host, _ = os.Hostname()
}

// Report takes the warnings of the configuration now served and records a
// Warning Event for each one that the previous Report did not have: a
// problem that persists across rebuilds is recorded once, and again only
// after it was fixed and came back. It never blocks: Events are written by
// Run's goroutine, and when more than 256 wait the rest are dropped (and
// counted in the log). Warnings about objects not in the caches (e.g. a
// certificate as a whole) are skipped.
func (s *Source) Report(warnings []model.Warning) {
	r := &s.events
	next := make(map[model.Warning]bool, len(warnings))
	r.mu.Lock()
	var fresh []model.Warning
	for _, w := range warnings {
		if !next[w] && !r.reported[w] {
			fresh = append(fresh, w)
		}
		next[w] = true
	}
	r.reported = next
	if !s.opts.Events {
		r.mu.Unlock()
		return
	}
	dropped := 0
	for _, w := range fresh {
		select {
		case r.queue <- w:
		default:
			dropped++
		}
	}
	r.dropped += dropped
	total := r.dropped
	r.mu.Unlock()
	if dropped > 0 {
		s.log.Warn("too many warnings at once; some Kubernetes Events were not recorded", "dropped", dropped, "dropped_total", total)
	}
}

// run writes queued Events until ctx is done.
func (r *eventRecorder) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case w := <-r.queue:
			r.record(ctx, w)
		}
	}
}

func (r *eventRecorder) record(ctx context.Context, w model.Warning) {
	ev := r.event(w, time.Now())
	if ev == nil {
		r.s.log.Debug("no Event for a warning about an object not in the caches", "object", w.Object.String())
		return
	}
	ctx, cancel := context.WithTimeout(ctx, eventTimeout)
	defer cancel()
	if _, err := r.s.client.CoreV1().Events(ev.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil && ctx.Err() == nil {
		r.s.log.Warn("cannot record a Kubernetes Event", "object", w.Object.String(), "error", err)
	}
}

// event builds the Event for w, or returns nil when the object is not in
// the caches.
func (r *eventRecorder) event(w model.Warning, now time.Time) *corev1.Event {
	obj, apiVersion := r.s.lookup(w.Object)
	if obj == nil {
		return nil
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil
	}
	ns := m.GetNamespace()
	if ns == "" {
		ns = metav1.NamespaceDefault // where Events of cluster-scoped objects go
	}
	name := m.GetName()
	if len(name) > maxEventNameStart {
		name = name[:maxEventNameStart]
	}
	msg := w.Message
	if len(msg) > maxEventMessage {
		msg = msg[:maxEventMessage-3] + "..."
	}
	t := metav1.NewTime(now)
	return &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{
			Name:      fmt.Sprintf("%s.%x", name, now.UnixNano()),
			Namespace: ns,
		},
		InvolvedObject: corev1.ObjectReference{
			APIVersion:      apiVersion,
			Kind:            w.Object.Kind,
			Namespace:       m.GetNamespace(),
			Name:            m.GetName(),
			UID:             m.GetUID(),
			ResourceVersion: m.GetResourceVersion(),
		},
		Reason:              EventReason,
		Message:             msg,
		Type:                corev1.EventTypeWarning,
		Source:              corev1.EventSource{Component: r.s.opts.Component, Host: r.host},
		FirstTimestamp:      t,
		LastTimestamp:       t,
		Count:               1,
		ReportingController: ReportingController,
		ReportingInstance:   r.host,
	}
}
