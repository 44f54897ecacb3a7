package config

import (
	"fmt"
	"net"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Values of Kube.Storage.
const (
	// KubeStorageAuto is KubeStorageSecrets in a pod (in_cluster), else
	// KubeStorageFile: a gateway run from a kubeconfig (a workstation, a
	// test) writes no Secrets into the cluster unless told to.
	KubeStorageAuto = "auto"
	// KubeStorageSecrets keeps certificates, ACME accounts and locks in
	// Secrets and Leases of Kube.StorageNamespace, shared by every replica.
	KubeStorageSecrets = "secrets"
	// KubeStorageFile keeps them in the folder tls.storage, per replica.
	KubeStorageFile = "file"
)

// KubeLeaderElection configures the election of the one replica that
// writes Ingress status (a coordination.k8s.io/v1 Lease in
// Kube.StorageNamespace).
type KubeLeaderElection struct {
	// LeaseName names the election's Lease.
	LeaseName string `koanf:"lease_name"`
	// LeaseDuration is how long followers wait after the leader's last
	// renewal before one of them takes over.
	LeaseDuration time.Duration `koanf:"lease_duration"`
	// RenewDeadline is how long the leader keeps trying to renew before it
	// gives up leading; it must be under LeaseDuration.
	RenewDeadline time.Duration `koanf:"renew_deadline"`
	// RetryPeriod is how often candidates try to acquire or renew.
	RetryPeriod time.Duration `koanf:"retry_period"`
}

func defaultKubeLeaderElection() KubeLeaderElection {
	return KubeLeaderElection{LeaseName: "sluice-leader", LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second}
}

// SecretStorage reports whether certificates are kept in Secrets (the
// effective value of kube.storage).
func (c *Config) SecretStorage() bool {
	switch c.Kube.Storage {
	case KubeStorageSecrets:
		return c.ClusterMode() // always, once validated
	case KubeStorageAuto:
		return c.InCluster
	}
	return false
}

// PublishAddresses returns kube.publish_address as a list (it is one
// comma-separated string so that Kube stays comparable).
func (k Kube) PublishAddresses() []string {
	var out []string
	for a := range strings.SplitSeq(k.PublishAddress, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// validateKubeReplicas checks the keys of replicated cluster mode: shared
// storage, leader election and the published status.
func (c *Config) validateKubeReplicas() []error {
	var errs []error
	bad := func(key string, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config key %s: %s", key, fmt.Sprintf(format, args...)))
	}
	k := c.Kube
	switch k.Storage {
	case KubeStorageAuto, KubeStorageSecrets, KubeStorageFile:
	default:
		bad("kube.storage", "%q is not one of %s, %s, %s", k.Storage, KubeStorageAuto, KubeStorageSecrets, KubeStorageFile)
	}
	if k.Storage == KubeStorageSecrets && !c.ClusterMode() {
		bad("kube.storage", "secrets needs cluster mode (kubeconfig or in_cluster); standalone mode keeps certificates in tls.storage")
	}
	if k.StorageNamespace != "" && !dnsLabel.MatchString(k.StorageNamespace) {
		bad("kube.storage_namespace", "%q is not a namespace name (lowercase RFC 1123 label)", k.StorageNamespace)
	}
	if key, val, ok := strings.Cut(k.StorageLabel, "="); !ok {
		bad("kube.storage_label", "%q is not key=value", k.StorageLabel)
	} else if errs1 := append(validation.IsQualifiedName(key), validation.IsValidLabelValue(val)...); len(errs1) > 0 {
		bad("kube.storage_label", "%q: %s", k.StorageLabel, strings.Join(errs1, "; "))
	}
	if k.PublishService != "" {
		ns, name, ok := strings.Cut(k.PublishService, "/")
		if !ok || !dnsLabel.MatchString(ns) || len(validation.IsDNS1035Label(name)) > 0 {
			bad("kube.publish_service", "%q is not NAMESPACE/NAME of a Service", k.PublishService)
		}
		if k.PublishAddress != "" {
			bad("kube.publish_address", "set together with kube.publish_service: choose one source of the Ingress status")
		}
	}
	for _, a := range k.PublishAddresses() {
		if net.ParseIP(a) == nil && len(validation.IsDNS1123Subdomain(a)) > 0 {
			bad("kube.publish_address", "%q is neither an IP address nor a host name", a)
		}
	}
	le := k.LeaderElection
	if len(validation.IsDNS1123Subdomain(le.LeaseName)) > 0 {
		bad("kube.leader_election.lease_name", "%q is not a Lease name (lowercase RFC 1123 subdomain)", le.LeaseName)
	}
	if le.RetryPeriod <= 0 {
		bad("kube.leader_election.retry_period", "%s must be positive", le.RetryPeriod)
	}
	if le.RenewDeadline <= le.RetryPeriod || le.LeaseDuration <= le.RenewDeadline {
		bad("kube.leader_election.lease_duration", "want retry_period (%s) < renew_deadline (%s) < lease_duration (%s)", le.RetryPeriod, le.RenewDeadline, le.LeaseDuration)
	}
	return errs
}
