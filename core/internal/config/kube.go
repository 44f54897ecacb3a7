package config

import (
	"fmt"
	"regexp"
	"time"
)

// Kube configures cluster mode: routes come from the Ingress objects of the
// API server that kubeconfig or in_cluster names.
type Kube struct {
	// Namespace limits every namespaced watch to one namespace; empty
	// watches all namespaces. IngressClasses are cluster-scoped and always
	// watched.
	Namespace string `koanf:"namespace"`
	// Secrets is "all" (one watch on every Secret of the watched
	// namespaces) or "referenced" (one watch per Secret that an Ingress
	// names, so the gateway neither caches nor needs to read any other).
	Secrets string `koanf:"secrets"`
	// HoldOff is how long a burst of changes must be quiet before one
	// rebuild (at most ten hold-offs after its first change).
	HoldOff time.Duration `koanf:"hold_off"`
	// Events records translation warnings as Kubernetes Events of type
	// Warning on the objects they name.
	Events bool `koanf:"events"`
	// QPS and Burst limit the gateway's requests to the API server (watches
	// are long-lived and count once each).
	QPS   float64 `koanf:"qps"`
	Burst int     `koanf:"burst"`

	// Replicas (kube_status.go): shared certificate storage, leader
	// election, and the status the leader writes on our Ingresses.

	// Storage is "secrets" (certificates in Secrets of StorageNamespace,
	// shared by replicas), "file" (tls.storage, per replica) or "auto"
	// (secrets when in_cluster, else file).
	Storage string `koanf:"storage"`
	// StorageNamespace holds the storage's Secrets and Leases and the
	// leader election Lease. Empty means the pod's namespace (POD_NAMESPACE),
	// else "sluice".
	StorageNamespace string `koanf:"storage_namespace"`
	// StorageLabel ("key=value") marks and selects the storage's objects.
	StorageLabel string `koanf:"storage_label"`
	// PublishService ("NAMESPACE/NAME") is the Service whose load balancer
	// status the leader copies into status.loadBalancer of our Ingresses.
	PublishService string `koanf:"publish_service"`
	// PublishAddress is a comma-separated list of IPs and host names
	// written instead (see PublishAddresses).
	PublishAddress string `koanf:"publish_address"`
	// LeaderElection elects the one replica that writes status.
	LeaderElection KubeLeaderElection `koanf:"leader_election"`
}

// Values of Kube.Secrets.
const (
	KubeSecretsAll        = "all"
	KubeSecretsReferenced = "referenced"
)

func defaultKube() Kube {
	return Kube{Secrets: KubeSecretsAll, HoldOff: 100 * time.Millisecond, Events: true, QPS: 20, Burst: 40,
		Storage: KubeStorageAuto, StorageLabel: "sluice.io/storage=certmagic", LeaderElection: defaultKubeLeaderElection()}
}

// ClusterMode reports whether routes come from an API server.
func (c *Config) ClusterMode() bool { return c.Kubeconfig != "" || c.InCluster }

// dnsLabel is an RFC 1123 label, the form of a namespace name.
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// validateKube checks the route source keys and the kube section.
func (c *Config) validateKube() []error {
	var errs []error
	bad := func(key string, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config key %s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.Kubeconfig != "" && c.InCluster {
		bad("kubeconfig", "set together with in_cluster: choose one way to reach the API server")
	}
	if c.Manifests != "" && c.ClusterMode() {
		bad("manifests", "set together with kubeconfig or in_cluster: choose standalone mode or cluster mode")
	}
	k := c.Kube
	if k.Namespace != "" && !dnsLabel.MatchString(k.Namespace) {
		bad("kube.namespace", "%q is not a namespace name (lowercase RFC 1123 label)", k.Namespace)
	}
	switch k.Secrets {
	case KubeSecretsAll, KubeSecretsReferenced:
	default:
		bad("kube.secrets", "%q is not one of %s, %s", k.Secrets, KubeSecretsAll, KubeSecretsReferenced)
	}
	if k.HoldOff < 0 || k.HoldOff > 10*time.Second {
		bad("kube.hold_off", "%s is outside 0s..10s", k.HoldOff)
	}
	if k.QPS <= 0 {
		bad("kube.qps", "%v must be positive", k.QPS)
	}
	if k.Burst < 1 {
		bad("kube.burst", "%d must be at least 1", k.Burst)
	}
	return append(errs, c.validateKubeReplicas()...)
}
