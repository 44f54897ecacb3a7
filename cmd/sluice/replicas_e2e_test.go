package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/sluicegw/sluice/internal/kubetest"
)

// Two gateway processes in cluster mode, as two replicas of the
// Deployment in examples/kubernetes: a real kube-apiserver, pebble as the
// ACME CA, certificates in Secrets. They place one ACME order for a host
// and both serve its certificate; one of them (the elected leader) writes
// the Ingress status, and when it is killed the other takes over within
// the lease duration.
func TestReplicasE2E(t *testing.T) {
	cl := kubetest.Start(t)
	k := cl.Client
	ctx := context.Background()
	mustCreate(t, k, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "sluice"}})
	mustCreate(t, k, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "sluice", Name: "sluice"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Name: "https", Port: 443}}},
	})
	setLoadBalancer(t, k, "192.0.2.10")
	mustCreate(t, k, &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: "sluice"}, Spec: networkingv1.IngressClassSpec{Controller: "sluice.io/ingress-controller"}})
	mustCreate(t, k, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	})
	mustCreate(t, k, webIngress("web.test"))

	// Pebble validates on the challenge ports of 127.0.0.1 (its DNS
	// answers 127.0.0.1 for every name): replica a listens there, replica
	// b on 127.0.0.2. Whichever replica orders, a answers the challenge
	// (from the shared storage if b ordered), as behind a load balancer.
	ports := kubetest.FreePorts(t, 2)
	p := startPebble(t, ports[0], ports[1], pebbleOptions{})
	const lease = 4 * time.Second
	conf := filepath.Join(t.TempDir(), "sluice.yaml")
	writeFile(t, conf, fmt.Sprintf(`log: {level: debug}
kube:
  storage: secrets
  storage_namespace: sluice
  leader_election: {lease_duration: %s, renew_deadline: 3s, retry_period: 500ms}
tls:
  issuer: acme
  acme:
    ca: %s
    email: ops@sluice.test
    trusted_roots: %s
`, lease, p.dir, p.apiCA))
	start := func(name, ip string, httpPort, tlsPort int) *gateway {
		t.Setenv("POD_NAME", name) // the replica's identity in the Leases
		return startGateway(t, "--config", conf, "--kubeconfig", cl.Kubeconfig, "--publish-service", "sluice/sluice",
			"--http-addr", fmt.Sprintf("%s:%d", ip, httpPort), "--https-addr", fmt.Sprintf("%s:%d", ip, tlsPort))
	}
	gws := map[string]*gateway{
		"replica-a": start("replica-a", "127.0.0.1", ports[0], ports[1]),
		"replica-b": start("replica-b", "127.0.0.2", 0, 0),
	}

	// Both serve one certificate, verified against pebble's root.
	roots := p.roots(t)
	var fingerprints []string
	for _, name := range []string{"replica-a", "replica-b"} {
		g := gws[name]
		var leaf []byte
		waitUntil(t, 90*time.Second, name+" to serve web.test with pebble's certificate", func() bool {
			c, err := tlsDial(g.addr("https"), "web.test", &tls.Config{RootCAs: roots})
			if err != nil {
				return false
			}
			defer c.Close()
			leaf = c.ConnectionState().PeerCertificates[0].Raw
			return true
		})
		sum := sha256.Sum256(leaf)
		fingerprints = append(fingerprints, hex.EncodeToString(sum[:8]))
	}
	if fingerprints[0] != fingerprints[1] {
		t.Errorf("the replicas serve different certificates: %s, %s", fingerprints[0], fingerprints[1])
	}
	if n := strings.Count(p.log.String(), "Added order"); n != 1 {
		t.Errorf("pebble received %d orders, want 1 for two replicas\n%s", n, p.log.String())
	}
	// The certificate is in the shared storage, under its original key.
	secrets, err := k.CoreV1().Secrets("sluice").List(ctx, metav1.ListOptions{LabelSelector: "sluice.io/storage=certmagic"})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, s := range secrets.Items {
		keys = append(keys, s.Annotations["sluice.io/storage-key"])
	}
	if !containsSuffix(keys, "/web.test/web.test.crt") {
		t.Errorf("no web.test certificate among the storage's keys %q", keys)
	}
	t.Logf("one order, one certificate (%s) served by both replicas; storage keys: %q", fingerprints[0], keys)

	// Status: the leader writes it.
	waitIngressIP(t, k, "192.0.2.10", 30*time.Second)
	leader := leaseHolder(t, k)
	g, ok := gws[leader]
	if !ok {
		t.Fatalf("lease sluice/sluice-leader held by %q, not a replica", leader)
	}
	// Kill the leader (no clean shutdown: the Lease is not released) and
	// move the load balancer: only the new leader can write the new IP.
	g.cmd.Process.Kill()
	<-g.done
	killed := time.Now()
	// The lease runs out lease after its last renewal: the takeover is
	// measured from there (the replicas' clocks are this machine's).
	lastRenew := getLease(t, k).Spec.RenewTime.Time
	setLoadBalancer(t, k, "192.0.2.11")
	waitIngressIP(t, k, "192.0.2.11", 2*lease+10*time.Second)
	took := time.Since(killed)
	l := getLease(t, k)
	next := *l.Spec.HolderIdentity
	if next == leader {
		t.Fatalf("the killed replica %s still holds the lease", leader)
	}
	// Within the lease duration, plus client-go's polling: a candidate
	// counts the lease from when it saw the last renewal and tries every
	// retry period (500ms, jittered up to 2.2x), so up to 2 x 1.1s more,
	// and 1s of slack for a loaded machine.
	takeover := l.Spec.AcquireTime.Sub(lastRenew)
	if takeover > lease+3200*time.Millisecond {
		t.Errorf("%s took the lease %s after the killed leader's last renewal, want within the lease duration %s (+ retry period)", next, takeover, lease)
	}
	t.Logf("leader %s killed; %s took the lease %s after its last renewal and wrote the status %s after the kill (lease duration %s)",
		leader, next, takeover.Round(time.Millisecond), took.Round(time.Millisecond), lease)
}

func webIngress(host string) *networkingv1.Ingress {
	class := "sluice"
	prefix := networkingv1.PathTypePrefix
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: networkingv1.IngressSpec{
			IngressClassName: &class,
			TLS:              []networkingv1.IngressTLS{{Hosts: []string{host}}},
			Rules: []networkingv1.IngressRule{{Host: host, IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
				Paths: []networkingv1.HTTPIngressPath{{Path: "/", PathType: &prefix, Backend: networkingv1.IngressBackend{
					Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}},
				}}},
			}}}},
		},
	}
}

// mustCreate creates a Namespace, Service, IngressClass or Ingress.
func mustCreate(t *testing.T, k kubernetes.Interface, obj any) {
	t.Helper()
	ctx := context.Background()
	var err error
	switch o := obj.(type) {
	case *corev1.Namespace:
		_, err = k.CoreV1().Namespaces().Create(ctx, o, metav1.CreateOptions{})
	case *corev1.Service:
		_, err = k.CoreV1().Services(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	case *networkingv1.IngressClass:
		_, err = k.NetworkingV1().IngressClasses().Create(ctx, o, metav1.CreateOptions{})
	case *networkingv1.Ingress:
		_, err = k.NetworkingV1().Ingresses(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	default:
		t.Fatalf("mustCreate: %T", obj)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// setLoadBalancer sets the status of Service sluice/sluice, as a cloud's
// load balancer controller would.
func setLoadBalancer(t *testing.T, k kubernetes.Interface, ip string) {
	t.Helper()
	ctx := context.Background()
	svc, err := k.CoreV1().Services("sluice").Get(ctx, "sluice", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip}}
	if _, err := k.CoreV1().Services("sluice").UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func waitIngressIP(t *testing.T, k kubernetes.Interface, ip string, d time.Duration) {
	t.Helper()
	waitUntil(t, d, "Ingress default/web status.loadBalancer "+ip, func() bool {
		ing, err := k.NetworkingV1().Ingresses("default").Get(context.Background(), "web", metav1.GetOptions{})
		return err == nil && len(ing.Status.LoadBalancer.Ingress) == 1 && ing.Status.LoadBalancer.Ingress[0].IP == ip
	})
}

func getLease(t *testing.T, k kubernetes.Interface) *coordinationv1.Lease {
	t.Helper()
	l, err := k.CoordinationV1().Leases("sluice").Get(context.Background(), "sluice-leader", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Spec.HolderIdentity == nil || l.Spec.RenewTime == nil || l.Spec.AcquireTime == nil {
		t.Fatalf("lease sluice/sluice-leader: no holder, renew or acquire time: %+v", l.Spec)
	}
	return l
}

func leaseHolder(t *testing.T, k kubernetes.Interface) string {
	t.Helper()
	l, err := k.CoordinationV1().Leases("sluice").Get(context.Background(), "sluice-leader", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

func containsSuffix(list []string, suffix string) bool {
	for _, s := range list {
		if strings.HasSuffix(s, suffix) {
			return true
		}
	}
	return false
}
