package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"
)

// The container of examples/kubernetes/deployment.yaml, run with its args
// and environment (downward API and Secret values filled in), passes the
// config checks: it gets as far as the in-cluster client, which needs a
// pod. (The admin listener is off loopback for the kubelet's probes, so
// the config requires admin.token.)
func TestDeploymentIsAValidConfig(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(examplesDir, "deployment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var d appsv1.Deployment
	if err := yaml.UnmarshalStrict(b, &d); err != nil {
		t.Fatalf("deployment.yaml: %v", err)
	}
	if len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("deployment.yaml: %d containers, want 1", len(d.Spec.Template.Spec.Containers))
	}
	c := d.Spec.Template.Spec.Containers[0]
	t.Setenv("KUBERNETES_SERVICE_HOST", "") // not in a pod
	for _, e := range c.Env {
		v := e.Value
		switch {
		case e.ValueFrom == nil:
		case e.ValueFrom.FieldRef != nil:
			v = "sluice-test"
		case e.ValueFrom.SecretKeyRef != nil:
			v = "0123456789abcdef0123456789abcdef" // a token as the README says to make one
		default:
			t.Fatalf("deployment.yaml: env %s: unexpected valueFrom %+v", e.Name, e.ValueFrom)
		}
		t.Setenv(e.Name, v)
	}
	var stdout, stderr bytes.Buffer
	code := run(c.Args, &stdout, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "in-cluster config") {
		t.Errorf("sluice %s: exit %d, want 2 from the in-cluster client (config accepted); stderr:\n%s",
			strings.Join(c.Args, " "), code, stderr.String())
	}
}
