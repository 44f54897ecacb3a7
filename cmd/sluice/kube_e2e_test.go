package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/sluicegw/sluice/internal/kubetest"
	"github.com/sluicegw/sluice/internal/testcert"
)

// Cluster mode end to end: a real etcd + kube-apiserver on loopback, the
// backends in network namespaces (the API server refuses loopback
// addresses in EndpointSlices), and the real sluice binary run with the
// test kubeconfig.
func TestKubeE2E(t *testing.T) {
	cl := kubetest.Start(t)
	k := cl.Client
	ctx := context.Background()

	// Two backends, each in its own namespace, each named in its answers.
	nsA, nsB := kubetest.NewNetns(t), kubetest.NewNetns(t)
	nsBackend(t, nsA, "a")
	nsBackend(t, nsB, "b")

	ca, err := testcert.CA("kube e2e CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := testcert.Leaf(ca, []string{"s.test"}, testcert.Options{})
	if err != nil {
		t.Fatal(err)
	}
	create(t, k, &networkingv1.IngressClass{
		ObjectMeta: metav1.ObjectMeta{Name: "sluice"},
		Spec:       networkingv1.IngressClassSpec{Controller: "sluice.io/ingress-controller"},
	})
	create(t, k, kService("web-a"))
	create(t, k, kService("web-b"))
	create(t, k, kSlice("web-a", nsA.IP))
	create(t, k, kSlice("web-b", nsB.IP))
	create(t, k, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "s-tls"},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{"tls.crt": leaf.CertPEM, "tls.key": leaf.KeyPEM},
	})
	create(t, k, kIngress("web", "a.test", "web-a"))
	secure := kIngress("secure", "s.test", "web-a")
	secure.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{"s.test"}, SecretName: "s-tls"}}
	create(t, k, secure)

	gw := startGateway(t, "--kubeconfig", cl.Kubeconfig)
	plain := "http://" + gw.addr("http")
	client := &http.Client{Timeout: 5 * time.Second}

	t.Run("routes", func(t *testing.T) {
		expect(t, client, plain, "a.test", 200, "a")
		expect(t, client, plain, "nobody.test", 404, "")
		// The certificate of the TLS Secret, for its host.
		roots := x509.NewCertPool()
		roots.AddCert(ca.Cert)
		tlsClient := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{ServerName: "s.test", RootCAs: roots},
		}}
		defer tlsClient.CloseIdleConnections()
		expect(t, tlsClient, "https://"+gw.addr("https"), "s.test", 200, "a")
	})

	t.Run("TLS Secret rotation", func(t *testing.T) {
		roots := x509.NewCertPool()
		roots.AddCert(ca.Cert)
		served := func() string {
			conn, err := tls.Dial("tcp", gw.addr("https"), &tls.Config{ServerName: "s.test", RootCAs: roots})
			if err != nil {
				return err.Error()
			}
			defer conn.Close()
			return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
		}
		if got := served(); got != leaf.Cert.SerialNumber.String() {
			t.Fatalf("served certificate %s, want the Secret's %s", got, leaf.Cert.SerialNumber)
		}
		next, err := testcert.Leaf(ca, []string{"s.test"}, testcert.Options{})
		if err != nil {
			t.Fatal(err)
		}
		sec, err := k.CoreV1().Secrets("default").Get(ctx, "s-tls", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sec.Data = map[string][]byte{"tls.crt": next.CertPEM, "tls.key": next.KeyPEM}
		if _, err := k.CoreV1().Secrets("default").Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 5*time.Second, "the rotated certificate to be served", func() bool {
			return served() == next.Cert.SerialNumber.String()
		})
	})

	t.Run("edit takes effect within 1s, no failed request", func(t *testing.T) {
		load := startLoad(t, client, plain, "a.test")
		time.Sleep(300 * time.Millisecond) // requests in flight before the change
		cur, err := k.NetworkingV1().Ingresses("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cur.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name = "web-b"
		if _, err := k.NetworkingV1().Ingresses("default").Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		edited := time.Now()
		took := load.waitFor(t, "b", 5*time.Second).Sub(edited)
		time.Sleep(300 * time.Millisecond) // and requests after it
		total, failed := load.stop()
		t.Logf("edit visible after %s; %d requests, %d failed", took.Round(time.Millisecond), total, failed)
		if took > time.Second {
			t.Errorf("the edited Ingress took %s to take effect, want at most 1s", took)
		}
		if failed != 0 || total == 0 {
			t.Errorf("%d of %d requests failed during the change: %s", failed, total, load.firstFailure())
		}
	})

	t.Run("EndpointSlice change", func(t *testing.T) {
		es, err := k.DiscoveryV1().EndpointSlices("default").Get(ctx, "web-b-1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		es.Endpoints = []discoveryv1.Endpoint{{Addresses: []string{nsA.IP}}}
		if _, err := k.DiscoveryV1().EndpointSlices("default").Update(ctx, es, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 5*time.Second, "web-b's endpoints to move to backend a", func() bool {
			_, who, _, err := get(ctx, client, plain, "a.test", "/")
			return err == nil && who == "a"
		})
		es, _ = k.DiscoveryV1().EndpointSlices("default").Get(ctx, "web-b-1", metav1.GetOptions{})
		es.Endpoints = []discoveryv1.Endpoint{{Addresses: []string{nsB.IP}}}
		if _, err := k.DiscoveryV1().EndpointSlices("default").Update(ctx, es, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 5*time.Second, "web-b's endpoints to move back", func() bool {
			_, who, _, err := get(ctx, client, plain, "a.test", "/")
			return err == nil && who == "b"
		})
	})

	t.Run("invalid Ingress: Warning Event, others keep working", func(t *testing.T) {
		create(t, k, kIngress("bad", "bad.test", "ghost"))
		var ev corev1.Event
		waitUntil(t, 10*time.Second, "a Warning Event on Ingress default/bad", func() bool {
			list, err := k.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=Ingress,involvedObject.name=bad,type=Warning"})
			if err != nil || len(list.Items) == 0 {
				return false
			}
			ev = list.Items[0]
			return true
		})
		if !strings.Contains(ev.Message, "ghost") || ev.Reason != "InvalidConfiguration" || ev.Source.Component != "sluice" {
			t.Errorf("event: reason %q, component %q, message %q", ev.Reason, ev.Source.Component, ev.Message)
		}
		expect(t, client, plain, "a.test", 200, "b")
		// A rebuild that does not fix it records no second Event.
		create(t, k, kIngress("other", "other.test", "web-a"))
		waitUntil(t, 5*time.Second, "the other Ingress", func() bool {
			code, _, _, err := get(ctx, client, plain, "other.test", "/")
			return err == nil && code == 200
		})
		time.Sleep(500 * time.Millisecond)
		list, err := k.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=bad"})
		if err != nil || len(list.Items) != 1 {
			t.Errorf("events for Ingress bad after an unrelated rebuild: %d (%v), want 1", len(list.Items), err)
		}
	})

	t.Run("deleted Ingress stops routing", func(t *testing.T) {
		if err := k.NetworkingV1().Ingresses("default").Delete(ctx, "other", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		deleted := time.Now()
		waitUntil(t, 5*time.Second, "other.test to answer 404", func() bool {
			code, _, _, err := get(ctx, client, plain, "other.test", "/")
			return err == nil && code == 404
		})
		t.Logf("deletion visible after %s", time.Since(deleted).Round(time.Millisecond))
		expect(t, client, plain, "a.test", 200, "b")
	})

	t.Run("least privilege: one namespace, referenced Secrets only", func(t *testing.T) {
		get3 := []string{"get", "list", "watch"}
		createRBAC(t, k, &rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: "sluice-classes"},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"ingressclasses"}, Verbs: get3}},
		}, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "sluice-classes"},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "sluice-classes"},
			Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: kubetest.User}},
		}, &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "sluice"},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"ingresses"}, Verbs: get3},
				{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: get3},
				{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: get3},
				// Only the Secret an Ingress names.
				{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"s-tls"}, Verbs: get3},
				{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create"}},
			},
		}, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "sluice"},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "sluice"},
			Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: kubetest.User}},
		})
		conf := filepath.Join(t.TempDir(), "sluice.yaml")
		writeFile(t, conf, "kube:\n  namespace: default\n  secrets: referenced\n")
		gw2 := startGateway(t, "--config", conf, "--kubeconfig", cl.UserKubeconfig)
		expect(t, client, "http://"+gw2.addr("http"), "a.test", 200, "b")
		roots := x509.NewCertPool()
		roots.AddCert(ca.Cert)
		tlsClient := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{ServerName: "s.test", RootCAs: roots},
		}}
		defer tlsClient.CloseIdleConnections()
		expect(t, tlsClient, "https://"+gw2.addr("https"), "s.test", 200, "a")
		if code, body := readyz(gw2); code != 200 || body != "ready\n" {
			t.Fatalf("/readyz with least privilege: %d %q", code, body)
		}
		// This gateway records its own Event for the invalid Ingress.
		waitUntil(t, 10*time.Second, "a second Warning Event on Ingress default/bad", func() bool {
			list, err := k.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=bad"})
			return err == nil && len(list.Items) == 2
		})
		if strings.Contains(gw2.Log(), "forbidden") {
			t.Fatalf("a request was refused:\n%s", gw2.Log())
		}
		gw2.cmd.Process.Kill()
	})

	t.Run("API server that stops answering (network cut) loses no route", func(t *testing.T) {
		load := startLoad(t, client, plain, "a.test")
		cl.PauseAPIServer()
		paused := time.Now()
		waitUntil(t, 30*time.Second, "/readyz to report degraded", func() bool {
			code, body := readyz(gw)
			return code == 200 && strings.Contains(body, "degraded")
		})
		t.Logf("degraded %s after the API server stopped answering", time.Since(paused).Round(time.Millisecond))
		cl.ResumeAPIServer()
		waitUntil(t, 30*time.Second, "/readyz to report ready again", func() bool {
			code, body := readyz(gw)
			return code == 200 && body == "ready\n"
		})
		total, failed := load.stop()
		if failed != 0 || total == 0 {
			t.Errorf("%d of %d requests failed while the API server did not answer: %s", failed, total, load.firstFailure())
		}
	})

	t.Run("API server restart loses no route", func(t *testing.T) {
		load := startLoad(t, client, plain, "a.test")
		cl.StopAPIServer()
		waitUntil(t, 30*time.Second, "/readyz to report degraded", func() bool {
			code, body := readyz(gw)
			return code == 200 && strings.Contains(body, "degraded")
		})
		code, body := readyz(gw)
		t.Logf("/readyz while the API server is down: %d %q", code, body)
		time.Sleep(time.Second) // serving on the cached routes
		cl.StartAPIServer()
		waitUntil(t, 60*time.Second, "/readyz to report ready again", func() bool {
			code, body := readyz(gw)
			return code == 200 && body == "ready\n"
		})
		total, failed := load.stop()
		if failed != 0 || total == 0 {
			t.Errorf("%d of %d requests failed across the restart: %s", failed, total, load.firstFailure())
		}
		// The watches resumed: a new Ingress is served.
		create(t, k, kIngress("after", "after.test", "web-a"))
		start := time.Now()
		waitUntil(t, 60*time.Second, "an Ingress created after the restart to be routed", func() bool {
			code, who, _, err := get(ctx, client, plain, "after.test", "/")
			return err == nil && code == 200 && who == "a"
		})
		t.Logf("%d requests across the restart, none failed; new Ingress routed %s after creation", total, time.Since(start).Round(time.Millisecond))
	})
}

// nsBackend serves HTTP on ns's address, port 8080, naming itself in the
// X-Backend header and the body.
func createRBAC(t *testing.T, k kubernetes.Interface, objs ...any) {
	t.Helper()
	ctx := context.Background()
	for _, o := range objs {
		var err error
		switch o := o.(type) {
		case *rbacv1.ClusterRole:
			_, err = k.RbacV1().ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRoleBinding:
			_, err = k.RbacV1().ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.Role:
			_, err = k.RbacV1().Roles(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.RoleBinding:
			_, err = k.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		default:
			t.Fatalf("createRBAC: unsupported %T", o)
		}
		if err != nil {
			t.Fatalf("create %T: %v", o, err)
		}
	}
}

func nsBackend(t *testing.T, ns *kubetest.Netns, name string) {
	t.Helper()
	l, err := ns.Listen(8080)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", name)
		fmt.Fprintln(w, name)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

func create[T interface{ GetName() string }](t *testing.T, k kubernetes.Interface, obj T) {
	t.Helper()
	ctx := context.Background()
	var err error
	switch o := any(obj).(type) {
	case *networkingv1.IngressClass:
		_, err = k.NetworkingV1().IngressClasses().Create(ctx, o, metav1.CreateOptions{})
	case *networkingv1.Ingress:
		_, err = k.NetworkingV1().Ingresses(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	case *corev1.Service:
		_, err = k.CoreV1().Services(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	case *discoveryv1.EndpointSlice:
		_, err = k.DiscoveryV1().EndpointSlices(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	case *corev1.Secret:
		_, err = k.CoreV1().Secrets(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	default:
		t.Fatalf("create: unsupported %T", obj)
	}
	if err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

func kService(name string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{
			Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP,
		}}},
	}
}

func kSlice(svc string, addr string) *discoveryv1.EndpointSlice {
	port := int32(8080)
	ready := true
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: svc + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Port: &port}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{addr}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
	}
}

func kIngress(name, host, svc string) *networkingv1.Ingress {
	class := "sluice"
	prefix := networkingv1.PathTypePrefix
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: networkingv1.IngressSpec{IngressClassName: &class, Rules: []networkingv1.IngressRule{{
			Host: host,
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
				Path: "/", PathType: &prefix,
				Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: svc, Port: networkingv1.ServiceBackendPort{Number: 80}}},
			}}}},
		}}},
	}
}

// expect asserts one request's status and backend.
func expect(t *testing.T, c *http.Client, base, host string, code int, backend string) {
	t.Helper()
	got, who, body, err := get(context.Background(), c, base, host, "/")
	if err != nil || got != code || who != backend {
		t.Fatalf("GET %s: %d from %q (%v), want %d from %q\n%s", host, got, who, err, code, backend, body)
	}
}

func readyz(gw *gateway) (int, string) {
	resp, err := http.Get("http://" + gw.addr("admin") + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// load sends requests for one host from 4 goroutines until stopped, bounded
// to 2 minutes, and counts failures (anything but a 200).
type load struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	total  atomic.Int64
	failed atomic.Int64

	mu      sync.Mutex
	first   string               // first failure
	seen    map[string]time.Time // backend → first answer
	stopped bool
}

func startLoad(t *testing.T, c *http.Client, base, host string) *load {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	l := &load{cancel: cancel, seen: map[string]time.Time{}}
	t.Cleanup(func() { l.stop() })
	for range 4 {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				code, who, body, err := get(ctx, c, base, host, "/")
				if ctx.Err() != nil {
					return
				}
				l.total.Add(1)
				l.mu.Lock()
				if err != nil || code != 200 {
					l.failed.Add(1)
					if l.first == "" {
						l.first = fmt.Sprintf("%d %v %q", code, err, body)
					}
				} else if _, ok := l.seen[who]; !ok {
					l.seen[who] = time.Now()
				}
				l.mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	return l
}

// waitFor returns when backend first answered, waiting up to d.
func (l *load) waitFor(t *testing.T, backend string, d time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		l.mu.Lock()
		at, ok := l.seen[backend]
		l.mu.Unlock()
		if ok {
			return at
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("backend %s never answered within %s", backend, d)
	return time.Time{}
}

func (l *load) stop() (total, failed int64) {
	l.cancel()
	l.wg.Wait()
	return l.total.Load(), l.failed.Load()
}

func (l *load) firstFailure() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.first
}
