package kube

import (
	"context"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/sluicegw/sluice/core/internal/model"
)

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func forbidden() error {
	return apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, "", nil)
}

// events lists every Event of the fake cluster as "ns Kind/name reason: message".
func events(t *testing.T, client *fake.Clientset) []string {
	t.Helper()
	list, err := client.CoreV1().Events("").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		out = append(out, e.Namespace+" "+e.InvolvedObject.Kind+"/"+e.InvolvedObject.Name+" "+e.Reason+": "+e.Message)
	}
	sort.Strings(out)
	return out
}

func waitEvents(t *testing.T, client *fake.Clientset, n int) []string {
	t.Helper()
	var got []string
	waitUntil(t, "events", func() bool { got = events(t, client); return len(got) >= n })
	return got
}

var (
	badPath  = model.Warning{Object: model.ObjectRef{Kind: "Ingress", Namespace: "shop", Name: "web"}, Message: `spec.rules[0].http.paths[0].path: "foo" must start with "/"`}
	badClass = model.Warning{Object: model.ObjectRef{Kind: "IngressClass", Name: "sluice"}, Message: "something about the class"}
	noObject = model.Warning{Object: model.ObjectRef{Kind: "Certificate"}, Message: "no such object"}
	gone     = model.Warning{Object: model.ObjectRef{Kind: "Ingress", Namespace: "shop", Name: "gone"}, Message: "not in the cache"}
)

func TestReportRecordsEachWarningOnce(t *testing.T) {
	client := fake.NewClientset(baseObjects()...)
	s, rec := start(t, Options{Client: client, Events: true, HoldOff: 10 * time.Millisecond})
	rec.wait(t, "first delivery")

	s.Report([]model.Warning{badPath, badPath, noObject, gone})
	got := waitEvents(t, client, 1)
	want := []string{`shop Ingress/web InvalidConfiguration: spec.rules[0].http.paths[0].path: "foo" must start with "/"`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	list, _ := client.CoreV1().Events("shop").List(context.Background(), metav1.ListOptions{})
	e := list.Items[0]
	if e.Type != corev1.EventTypeWarning || e.InvolvedObject.UID != "uid-shop-web" || e.InvolvedObject.APIVersion != "networking.k8s.io/v1" ||
		e.Source.Component != "sluice" || e.ReportingController != ReportingController || e.Count != 1 {
		t.Fatalf("event fields: %+v", e)
	}

	// The same warnings again (a rebuild that did not fix it): no Event.
	// A new warning on a cluster-scoped object: one Event in "default".
	s.Report([]model.Warning{badPath, badClass})
	got = waitEvents(t, client, 2)
	if len(got) != 2 || !strings.HasPrefix(got[0], "default IngressClass/sluice InvalidConfiguration: something about the class") {
		t.Fatalf("events after the second report: %q", got)
	}

	// Fixed, then broken again: recorded again.
	s.Report(nil)
	s.Report([]model.Warning{badPath})
	got = waitEvents(t, client, 3)
	if len(got) != 3 {
		t.Fatalf("events after fix and relapse: %q", got)
	}
	time.Sleep(100 * time.Millisecond)
	if got := events(t, client); len(got) != 3 {
		t.Fatalf("more events than warnings: %q", got)
	}
}

func TestReportWithoutEvents(t *testing.T) {
	client := fake.NewClientset(baseObjects()...)
	s, rec := start(t, Options{Client: client, Events: false, HoldOff: 10 * time.Millisecond})
	rec.wait(t, "first delivery")
	s.Report([]model.Warning{badPath})
	time.Sleep(100 * time.Millisecond)
	if got := events(t, client); len(got) != 0 {
		t.Fatalf("events recorded with Events off: %q", got)
	}
}

func TestEventTruncates(t *testing.T) {
	ing := ingress("shop", strings.Repeat("a", 253), "web", "")
	client := fake.NewClientset(ing)
	s, rec := start(t, Options{Client: client, Events: true, HoldOff: 10 * time.Millisecond})
	rec.wait(t, "first delivery")
	w := model.Warning{Object: model.ObjectRef{Kind: "Ingress", Namespace: "shop", Name: ing.Name}, Message: strings.Repeat("x", 5000)}
	ev := s.events.event(w, time.Unix(0, 42))
	if ev == nil {
		t.Fatal("no event for a cached Ingress")
	}
	if len(ev.Name) > 253 || !strings.HasSuffix(ev.Name, ".2a") || len(ev.Message) != maxEventMessage || !strings.HasSuffix(ev.Message, "...") {
		t.Fatalf("name %q (%d), message length %d", ev.Name, len(ev.Name), len(ev.Message))
	}
	if ev.InvolvedObject.Name != ing.Name {
		t.Fatalf("involved object name cut: %q", ev.InvolvedObject.Name)
	}
}

// TestHammer reports, reads Degraded and delivers concurrently (run with
// -race).
func TestHammer(t *testing.T) {
	client := fake.NewClientset(baseObjects()...)
	s, rec := start(t, Options{Client: client, Events: true, HoldOff: time.Millisecond})
	rec.wait(t, "first delivery")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				switch (g + i) % 3 {
				case 0:
					s.Report([]model.Warning{badPath, {Object: badPath.Object, Message: string(rune('a' + i%5))}})
				case 1:
					_ = s.Degraded()
				case 2:
					s.notify()
				}
			}
		}()
	}
	wg.Wait()
	// Every distinct warning produced at least one Event, none for the
	// unknown object.
	waitUntil(t, "events recorded", func() bool { return len(events(t, client)) >= 6 })
	for _, e := range events(t, client) {
		if !strings.HasPrefix(e, "shop Ingress/web ") {
			t.Fatalf("unexpected event %q", e)
		}
	}
}
