package config

import (
	"strings"
	"testing"
	"time"
)

func TestKubeDefaults(t *testing.T) {
	cfg, err := Load(Sources{})
	if err != nil {
		t.Fatal(err)
	}
	want := Kube{Secrets: KubeSecretsAll, HoldOff: 100 * time.Millisecond, Events: true, QPS: 20, Burst: 40,
		Storage: KubeStorageAuto, StorageLabel: "sluice.io/storage=certmagic",
		LeaderElection: KubeLeaderElection{LeaseName: "sluice-leader", LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second}}
	if cfg.Kube != want {
		t.Fatalf("kube defaults: got %+v, want %+v", cfg.Kube, want)
	}
	if cfg.ClusterMode() {
		t.Fatal("defaults must not select cluster mode")
	}
}

func TestKubeKeys(t *testing.T) {
	file := writeFile(t, "c.yaml", "kubeconfig: /tmp/kc\nkube:\n  namespace: shop\n  secrets: referenced\n  hold_off: 250ms\n  events: false\n  qps: 5\n  burst: 7\n")
	cfg, err := Load(Sources{File: file, Env: []string{"SLUICE_KUBE_NAMESPACE=web"}})
	if err != nil {
		t.Fatal(err)
	}
	want := defaultKube()
	want.Namespace, want.Secrets, want.HoldOff, want.Events, want.QPS, want.Burst = "web", KubeSecretsReferenced, 250*time.Millisecond, false, 5, 7
	if cfg.Kube != want || !cfg.ClusterMode() {
		t.Fatalf("got %+v (cluster mode %v), want %+v", cfg.Kube, cfg.ClusterMode(), want)
	}
}

func TestKubeInvalid(t *testing.T) {
	for name, tc := range map[string]struct {
		yaml string
		want string
	}{
		"both kubeconfig and in_cluster": {"kubeconfig: /k\nin_cluster: true\n", `config key kubeconfig: set together with in_cluster`},
		"manifests and cluster mode":     {"manifests: /m\nin_cluster: true\n", `config key manifests: set together with kubeconfig or in_cluster`},
		"namespace":                      {"kube: {namespace: Shop_1}\n", `config key kube.namespace: "Shop_1" is not a namespace name`},
		"secrets":                        {"kube: {secrets: some}\n", `config key kube.secrets: "some" is not one of all, referenced`},
		"hold_off negative":              {"kube: {hold_off: -1s}\n", `config key kube.hold_off: -1s is outside 0s..10s`},
		"hold_off too long":              {"kube: {hold_off: 1m}\n", `config key kube.hold_off: 1m0s is outside 0s..10s`},
		"hold_off bare number":           {"kube: {hold_off: 100}\n", `config key kube.hold_off`},
		"qps":                            {"kube: {qps: 0}\n", `config key kube.qps: 0 must be positive`},
		"burst":                          {"kube: {burst: 0}\n", `config key kube.burst: 0 must be at least 1`},
		"unknown key":                    {"kube: {namespaces: x}\n", `unknown key "kube.namespaces" (did you mean "kube.namespace"?)`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Load(Sources{File: writeFile(t, "c.yaml", tc.yaml)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
