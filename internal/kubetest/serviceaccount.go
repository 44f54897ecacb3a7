package kubetest

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Kubectl returns the path of the kubectl that scripts/kube-assets.sh
// builds beside the API server (running the script when it is missing).
func Kubectl(t testing.TB) string {
	t.Helper()
	dir := Assets(t)
	bin := filepath.Join(dir, "kubectl")
	if fi, err := os.Stat(bin); err == nil && fi.Mode()&0o111 != 0 {
		return bin
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatalf("kubetest: kubectl is not in %s and the build script cannot be found: %v", dir, err)
	}
	if out, err := runScript(filepath.Join(root, "scripts", "kube-assets.sh"), dir); err != nil {
		t.Fatalf("kubetest: kubectl is missing from %s and building it failed (%v). Run `scripts/kube-assets.sh %s`.\n%s", dir, err, dir, tail(out, 30))
	}
	return bin
}

// ServiceAccountKubeconfig asks the API server for a token of the
// ServiceAccount ns/name (TokenRequest, as the kubelet does for a pod) and
// writes a kubeconfig that authenticates with it. The ServiceAccount must
// exist; the token is valid for an hour.
func (c *Cluster) ServiceAccountKubeconfig(t testing.TB, ns, name string) string {
	t.Helper()
	hour := int64(3600)
	tr, err := c.Client.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &hour}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("kubetest: token for ServiceAccount %s/%s: %v", ns, name, err)
	}
	path := filepath.Join(c.dir, "kubeconfig-sa-"+ns+"-"+name)
	if err := c.writeKubeconfig(path, tr.Status.Token); err != nil {
		t.Fatal(err)
	}
	return path
}
