package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/sluicegw/sluice/internal/kubetest"
)

// examplesDir is the install the README documents.
var examplesDir = filepath.Join("..", "..", "examples", "kubernetes")

// The manifests of examples/kubernetes pass a server-side dry run on a
// real API server (schema, admission, and the namespace's restricted Pod
// Security level: no warning), are applied, and the gateway run with the
// token of their ServiceAccount (not an administrator) works: it serves,
// stores its local CA in Secrets, writes Ingress status. Requests outside
// its role are refused.
func TestInstallManifestsAndRBAC(t *testing.T) {
	cl := kubetest.Start(t)
	kubectl := kubetest.Kubectl(t)
	k := cl.Client
	ctx := context.Background()
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(kubectl, append([]string{"--kubeconfig", cl.Kubeconfig}, args...)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		return out.String()
	}

	// The namespace first: a dry run creates nothing, so the namespaced
	// objects would find no namespace (kubectl applies it first in a
	// real install).
	run("apply", "-f", filepath.Join(examplesDir, "namespace.yaml"))
	out := run("apply", "--dry-run=server", "-k", examplesDir)
	for _, want := range []string{
		"serviceaccount/sluice", "clusterrole.rbac.authorization.k8s.io/sluice", "role.rbac.authorization.k8s.io/sluice",
		"ingressclass.networking.k8s.io/sluice", "deployment.apps/sluice", "poddisruptionbudget.policy/sluice", "service/sluice",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Warning") {
		t.Errorf("the API server warned (Pod Security?):\n%s", out)
	}
	t.Logf("kubectl apply --dry-run=server -k examples/kubernetes:\n%s", out)
	run("apply", "-k", examplesDir)

	// The routes the gateway will serve, and the load balancer address it
	// will publish.
	mustCreate(t, k, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	})
	mustCreate(t, k, webIngress("web.test"))
	setLoadBalancer(t, k, "192.0.2.20")

	// The gateway as the Deployment runs it, with the ServiceAccount's
	// token (TokenRequest, as the kubelet mounts it) instead of in-cluster
	// files: secrets storage and the namespace from POD_NAMESPACE.
	saConfig := cl.ServiceAccountKubeconfig(t, "sluice", "sluice")
	conf := filepath.Join(t.TempDir(), "sluice.yaml")
	writeFile(t, conf, "kube:\n  storage: secrets\n")
	t.Setenv("POD_NAMESPACE", "sluice")
	t.Setenv("POD_NAME", "sluice-0")
	g := startGateway(t, "--config", conf, "--kubeconfig", saConfig, "--publish-service", "sluice/sluice")

	waitIngressIP(t, k, "192.0.2.20", 30*time.Second)
	// The local CA (the default issuer) lives in the shared storage, and
	// serves web.test.
	var root *x509.Certificate
	waitUntil(t, 30*time.Second, "the local CA root in Secret storage", func() bool {
		list, err := k.CoreV1().Secrets("sluice").List(ctx, metav1.ListOptions{LabelSelector: "sluice.io/storage=certmagic"})
		if err != nil {
			return false
		}
		for _, s := range list.Items {
			if strings.HasSuffix(s.Annotations["sluice.io/storage-key"], "root.crt") {
				if b, _ := pem.Decode(s.Data["value"]); b != nil {
					root, _ = x509.ParseCertificate(b.Bytes)
				}
			}
		}
		return root != nil
	})
	roots := x509.NewCertPool()
	roots.AddCert(root)
	waitUntil(t, 30*time.Second, "web.test served with the local CA's certificate", func() bool {
		c, err := tlsDial(g.addr("https"), "web.test", &tls.Config{RootCAs: roots})
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	if code, body := readyz(g); code != 200 || body != "ready\n" {
		t.Errorf("/readyz as the ServiceAccount: %d %q", code, body)
	}
	if strings.Contains(g.Log(), "forbidden") {
		t.Errorf("the gateway was refused a request:\n%s", g.logTail(60))
	}

	// Outside the role: refused (403).
	sa := clientFor(t, saConfig)
	for what, call := range map[string]func() error{
		"delete an Ingress": func() error {
			return sa.NetworkingV1().Ingresses("default").Delete(ctx, "web", metav1.DeleteOptions{})
		},
		"create a Secret in another namespace": func() error {
			_, err := sa.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
			return err
		},
		"list Leases in another namespace": func() error {
			_, err := sa.CoordinationV1().Leases("kube-system").List(ctx, metav1.ListOptions{})
			return err
		},
		"update a Service": func() error {
			svc, err := k.CoreV1().Services("default").Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return err
			}
			_, err = sa.CoreV1().Services("default").Update(ctx, svc, metav1.UpdateOptions{})
			return err
		},
		"list Pods": func() error {
			_, err := sa.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
			return err
		},
	} {
		if err := call(); !apierrors.IsForbidden(err) {
			t.Errorf("%s as the ServiceAccount: %v, want 403 Forbidden", what, err)
		}
	}
}

func clientFor(t *testing.T, kubeconfig string) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
