package core

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/sluicegw/sluice/core/internal/config"
	"github.com/sluicegw/sluice/core/internal/kube"
	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/core/internal/secretstore"
	"github.com/sluicegw/sluice/core/internal/status"
	"github.com/sluicegw/sluice/core/internal/translate"
)

// kubeClient makes a client for the cluster-mode API server. It reads the
// kubeconfig (or the in-cluster service account) but contacts no server.
func kubeClient(cfg *config.Config) (kubernetes.Interface, error) {
	return kube.NewClient(kube.ClientOptions{
		Kubeconfig: cfg.Kubeconfig,
		InCluster:  cfg.InCluster,
		QPS:        float32(cfg.Kube.QPS),
		Burst:      cfg.Kube.Burst,
		UserAgent:  "sluice",
	})
}

// newKubeSource makes the cluster-mode source. It contacts no server.
func newKubeSource(cfg *config.Config, log *slog.Logger) (*kube.Source, error) {
	client, err := kubeClient(cfg)
	if err != nil {
		return nil, err
	}
	src, err := kube.New(kube.Options{
		Client:                client,
		Namespace:             cfg.Kube.Namespace,
		ReferencedSecretsOnly: cfg.Kube.Secrets == config.KubeSecretsReferenced,
		HoldOff:               cfg.Kube.HoldOff,
		Events:                cfg.Kube.Events,
		Logger:                log,
	})
	if err != nil {
		return nil, fmt.Errorf("cluster mode: %w", err)
	}
	return src, nil
}

// kubeSource is the cluster-mode Source. client-go logs through klog, a
// process-wide logger: Run (not New, which has no side effects) sends it to
// the gateway's log so cluster mode keeps one log format.
//
// With kube.publish_service or kube.publish_address set, it also runs the
// leader election of the replicas, and the leader writes the status of the
// Ingresses each snapshot of the source owns.
func (g *Gateway) kubeSource() Source {
	klog.SetSlogLogger(g.log.With("component", "client-go"))
	cfg := g.cfg
	return func(ctx context.Context, onChange func(translate.Input, []model.Warning)) error {
		u, err := newStatusUpdater(cfg, g.opts.Env, g.log)
		if err != nil {
			return err
		}
		if u == nil {
			return g.kube.Run(ctx, onChange)
		}
		ctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			u.Run(ctx)
		}()
		defer func() {
			cancel()
			<-done // the Lease is released: another replica leads at once
		}()
		classNames := []string{cfg.IngressClass}
		return g.kube.Run(ctx, func(in translate.Input, w []model.Warning) {
			u.SetIngresses(status.Owned(in.Ingresses, in.IngressClasses, translate.ControllerName, classNames))
			onChange(in, w)
		})
	}
}

// replicaIdentity names this replica in Leases: the pod name (POD_NAME,
// from the downward API), else the host name.
func replicaIdentity(env []string) string {
	if v := lookupEnv(env, "POD_NAME"); v != "" {
		return v
	}
	h, _ := os.Hostname()
	return h
}

// serviceAccountNamespace is the pod's namespace as the kubelet mounts it.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// storageNamespace is where the shared storage and the election Lease
// live: kube.storage_namespace, else the pod's namespace (POD_NAMESPACE,
// else the service account's namespace file), else "sluice".
func storageNamespace(cfg *config.Config, env []string) string {
	if cfg.Kube.StorageNamespace != "" {
		return cfg.Kube.StorageNamespace
	}
	if v := lookupEnv(env, "POD_NAMESPACE"); v != "" {
		return v
	}
	if cfg.InCluster {
		if b, err := os.ReadFile(serviceAccountNamespace); err == nil && len(bytes.TrimSpace(b)) > 0 {
			return string(bytes.TrimSpace(b))
		}
	}
	return "sluice"
}

func lookupEnv(env []string, name string) string {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v
		}
	}
	return ""
}

// newStatusUpdater returns the leader-elected status writer, or nil when
// there is nothing to publish. It contacts no server.
func newStatusUpdater(cfg *config.Config, env []string, log *slog.Logger) (*status.Updater, error) {
	k := cfg.Kube
	if k.PublishService == "" && k.PublishAddress == "" {
		return nil, nil
	}
	client, err := kubeClient(cfg)
	if err != nil {
		return nil, err
	}
	return status.New(status.Options{
		Client:           client,
		Namespace:        storageNamespace(cfg, env),
		LeaseName:        k.LeaderElection.LeaseName,
		Identity:         replicaIdentity(env),
		LeaseDuration:    k.LeaderElection.LeaseDuration,
		RenewDeadline:    k.LeaderElection.RenewDeadline,
		RetryPeriod:      k.LeaderElection.RetryPeriod,
		PublishService:   k.PublishService,
		PublishAddresses: k.PublishAddresses(),
		Logger:           log,
	})
}

// clusterStorage returns the certificate storage shared by the replicas
// (Secrets and Leases in storageNamespace), or nil when the config keeps
// the file storage (standalone mode, kube.storage: file, or auto outside
// a pod).
func clusterStorage(cfg *config.Config, env []string, log *slog.Logger) (certmagic.Storage, error) {
	if !cfg.SecretStorage() {
		return nil, nil
	}
	client, err := kubeClient(cfg)
	if err != nil {
		return nil, err
	}
	s, err := secretstore.New(secretstore.Options{
		Client:    client,
		Namespace: storageNamespace(cfg, env),
		Label:     cfg.Kube.StorageLabel,
		Identity:  replicaIdentity(env),
		Logger:    log,
	})
	if err != nil {
		return nil, fmt.Errorf("config key kube.storage: %w", err)
	}
	return s, nil
}

// Degraded returns "" when every route source works, else why one does
// not (cluster mode: the API server is unreachable). The last routes are
// still served: /readyz stays 200 and says so in its body.
func (g *Gateway) Degraded() string {
	if g.kube == nil {
		return ""
	}
	return g.kube.Degraded()
}

// endpointsOnly is the EndpointSlice fast path (DESIGN.md): when snap
// differs from the served snapshot only in backend endpoints (under the
// same config), it updates the changed upstream pools in place and returns
// a state that reuses the served route table, certificates, TLS policies
// and filter chains; otherwise nil, and the caller builds everything.
//
// Why compare snapshots instead of asking the source what changed: the
// comparison is exact whatever the source (a manifest folder, informers)
// and survives dropped or merged deliveries and failed builds, where a
// "only EndpointSlices changed" hint from the source could be stale.
func (g *Gateway) endpointsOnly(cfg *config.Config, snap *model.Snapshot, warnings []model.Warning) *state {
	live := g.live.Load()
	if live == nil || live.cfg != cfg {
		return nil
	}
	changed, ok := endpointChanges(live.snap, snap)
	if !ok {
		return nil
	}
	for _, b := range changed {
		if !g.pools.SetEndpoints(b.Name, b.Endpoints) {
			return nil // a pool is missing: let Sync create it
		}
	}
	// Everything built from the snapshot is the same: keep it, and keep
	// the warnings that building it gave.
	next := *live
	next.snap = snap
	next.warnings = append(warnings, live.warnings[live.translated:]...)
	next.translated = len(warnings)
	next.built = time.Now()
	return &next
}

// endpointChanges reports whether a and b are equal in everything but
// their backends' endpoint lists, and if so returns b's backends whose
// endpoints differ from a's. Fields are compared with reflect, so a field
// added to the model later is compared too.
func endpointChanges(a, b *model.Snapshot) (changed []*model.Backend, same bool) {
	if a == nil || b == nil || len(a.Hosts) != len(b.Hosts) {
		return nil, false
	}
	seen := map[string]bool{}
	backend := func(x, y *model.Backend) bool {
		if x == nil || y == nil {
			return x == y
		}
		bx, by := *x, *y
		bx.Endpoints, by.Endpoints = nil, nil
		if !reflect.DeepEqual(&bx, &by) {
			return false
		}
		if !seen[y.Name] && !slices.Equal(x.Endpoints, y.Endpoints) {
			seen[y.Name] = true
			changed = append(changed, y)
		}
		return true
	}
	// A canary (ingress-nginx canary annotations) is compared like the
	// route: everything but its backend's endpoints.
	canary := func(x, y *model.Canary) bool {
		if x == nil || y == nil {
			return x == y
		}
		cx, cy := *x, *y
		cx.Backend, cy.Backend = nil, nil
		return reflect.DeepEqual(&cx, &cy) && backend(x.Backend, y.Backend)
	}
	sa, sb := *a, *b
	sa.Hosts, sb.Hosts = nil, nil
	sa.DefaultBackend, sb.DefaultBackend = nil, nil
	if !reflect.DeepEqual(&sa, &sb) || !backend(a.DefaultBackend, b.DefaultBackend) {
		return nil, false
	}
	for i, ha := range a.Hosts {
		hb := b.Hosts[i]
		if ha == nil || hb == nil {
			if ha != hb {
				return nil, false
			}
			continue
		}
		if len(ha.Routes) != len(hb.Routes) {
			return nil, false
		}
		va, vb := *ha, *hb
		va.Routes, vb.Routes = nil, nil
		if !reflect.DeepEqual(&va, &vb) {
			return nil, false
		}
		for j, ra := range ha.Routes {
			rb := hb.Routes[j]
			if ra == nil || rb == nil {
				if ra != rb {
					return nil, false
				}
				continue
			}
			xa, xb := *ra, *rb
			xa.Backend, xb.Backend = nil, nil
			xa.Canary, xb.Canary = nil, nil
			if !reflect.DeepEqual(&xa, &xb) || !backend(ra.Backend, rb.Backend) || !canary(ra.Canary, rb.Canary) {
				return nil, false
			}
		}
	}
	return changed, true
}
