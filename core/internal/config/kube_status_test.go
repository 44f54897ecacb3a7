package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestKubeReplicasKeys(t *testing.T) {
	file := writeFile(t, "c.yaml", `in_cluster: true
kube:
  storage: file
  storage_namespace: edge
  storage_label: app.kubernetes.io/name=sluice
  publish_address: " 192.0.2.10, lb.example.com ,2001:db8::1"
  leader_election: {lease_name: edge-leader, lease_duration: 6s, renew_deadline: 4s, retry_period: 1s}
`)
	cfg, err := Load(Sources{File: file})
	if err != nil {
		t.Fatal(err)
	}
	k := cfg.Kube
	want := KubeLeaderElection{LeaseName: "edge-leader", LeaseDuration: 6 * time.Second, RenewDeadline: 4 * time.Second, RetryPeriod: time.Second}
	if k.Storage != KubeStorageFile || k.StorageNamespace != "edge" || k.StorageLabel != "app.kubernetes.io/name=sluice" || k.LeaderElection != want {
		t.Errorf("got %+v", k)
	}
	if got := k.PublishAddresses(); !slices.Equal(got, []string{"192.0.2.10", "lb.example.com", "2001:db8::1"}) {
		t.Errorf("PublishAddresses() = %q", got)
	}
	cfg, err = Load(Sources{Env: []string{"SLUICE_KUBE_PUBLISH_SERVICE=sluice/sluice"}})
	if err != nil || cfg.Kube.PublishService != "sluice/sluice" {
		t.Errorf("publish_service from the environment: %v, %+v", err, cfg)
	}
}

func TestSecretStorage(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want bool
	}{
		{"in_cluster: true\n", true},
		{"kubeconfig: /k\n", false},
		{"kubeconfig: /k\nkube: {storage: secrets}\n", true},
		{"in_cluster: true\nkube: {storage: file}\n", false},
	} {
		cfg, err := Load(Sources{File: writeFile(t, "c.yaml", tc.yaml)})
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.SecretStorage(); got != tc.want {
			t.Errorf("%q: SecretStorage() = %v, want %v", tc.yaml, got, tc.want)
		}
	}
}

func TestKubeReplicasInvalid(t *testing.T) {
	for name, tc := range map[string]struct {
		yaml string
		want string
	}{
		"storage":              {"kube: {storage: s3}\n", `config key kube.storage: "s3" is not one of auto, secrets, file`},
		"secrets standalone":   {"manifests: /m\nkube: {storage: secrets}\n", `config key kube.storage: secrets needs cluster mode`},
		"storage_namespace":    {"kube: {storage_namespace: Edge}\n", `config key kube.storage_namespace: "Edge" is not a namespace name`},
		"storage_label no =":   {"kube: {storage_label: sluice}\n", `config key kube.storage_label: "sluice" is not key=value`},
		"storage_label bad":    {"kube: {storage_label: 'a b=c'}\n", `config key kube.storage_label: "a b=c": name part must consist of`},
		"publish_service":      {"kube: {publish_service: sluice}\n", `config key kube.publish_service: "sluice" is not NAMESPACE/NAME of a Service`},
		"publish_service name": {"kube: {publish_service: a/B}\n", `config key kube.publish_service: "a/B" is not NAMESPACE/NAME`},
		"both publish":         {"kube: {publish_service: a/b, publish_address: 192.0.2.1}\n", `config key kube.publish_address: set together with kube.publish_service`},
		"publish_address":      {"kube: {publish_address: '192.0.2.1,not an address'}\n", `config key kube.publish_address: "not an address" is neither an IP address nor a host name`},
		"lease_name":           {"kube: {leader_election: {lease_name: Leader}}\n", `config key kube.leader_election.lease_name: "Leader" is not a Lease name`},
		"retry_period":         {"kube: {leader_election: {retry_period: 0s}}\n", `config key kube.leader_election.retry_period: 0s must be positive`},
		"renew over lease":     {"kube: {leader_election: {renew_deadline: 20s}}\n", `config key kube.leader_election.lease_duration: want retry_period (2s) < renew_deadline (20s) < lease_duration (15s)`},
		"unknown election key": {"kube: {leader_election: {lease: 1s}}\n", `unknown key "kube.leader_election.lease"`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Load(Sources{File: writeFile(t, "c.yaml", tc.yaml)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
