// Package status writes status.loadBalancer of the Ingresses the gateway
// serves, from one replica at a time: the replicas elect a leader with a
// coordination.k8s.io/v1 Lease (client-go leaderelection), and only the
// leader writes. When the leader dies, another takes over within the
// lease duration; when it stops cleanly, it releases the Lease at once.
//
// The published addresses come from a Service (its status.loadBalancer,
// as a cloud load balancer fills it) or from a fixed list of IPs and host
// names.
package status

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/util/retry"
)

// DefaultResync is how often the leader rereads the published Service and
// rechecks every Ingress, besides the changes it is told about.
const DefaultResync = 10 * time.Second

// Options configure an Updater.
type Options struct {
	// Client reaches the API server. Required.
	Client kubernetes.Interface
	// Namespace and LeaseName name the election Lease. Required.
	Namespace string
	LeaseName string
	// Identity is this replica's name in the Lease (the pod name).
	// Required.
	Identity string
	// LeaseDuration, RenewDeadline and RetryPeriod are client-go's
	// leader election timings. Required.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// PublishService ("NAMESPACE/NAME") is the Service whose
	// status.loadBalancer.ingress is copied; or else
	PublishService string
	// PublishAddresses are IPs and host names written as they are. With
	// neither, the leader writes nothing.
	PublishAddresses []string
	// Resync is how often the leader rechecks everything. Zero means
	// DefaultResync.
	Resync time.Duration
	// Logger receives leadership changes and write failures. Nil discards.
	Logger *slog.Logger
}

// Updater campaigns for leadership and, while it leads, keeps the status
// of the Ingresses set with SetIngresses. New makes it.
type Updater struct {
	opts    Options
	log     *slog.Logger
	wake    chan struct{}
	mu      sync.Mutex
	ours    []types.NamespacedName
	leading bool
}

// New checks opts and returns an Updater. It contacts no server.
func New(opts Options) (*Updater, error) {
	switch {
	case opts.Client == nil:
		return nil, errors.New("status: no Kubernetes client")
	case opts.Namespace == "" || opts.LeaseName == "":
		return nil, errors.New("status: no namespace or name for the leader election Lease")
	case opts.Identity == "":
		return nil, errors.New("status: no identity for leader election")
	case opts.RetryPeriod <= 0 || opts.RenewDeadline <= opts.RetryPeriod || opts.LeaseDuration <= opts.RenewDeadline:
		return nil, fmt.Errorf("status: want 0 < retry period (%s) < renew deadline (%s) < lease duration (%s)", opts.RetryPeriod, opts.RenewDeadline, opts.LeaseDuration)
	}
	if opts.PublishService != "" {
		if _, _, ok := strings.Cut(opts.PublishService, "/"); !ok {
			return nil, fmt.Errorf("status: publish service %q is not NAMESPACE/NAME", opts.PublishService)
		}
	}
	if opts.Resync <= 0 {
		opts.Resync = DefaultResync
	}
	u := &Updater{opts: opts, log: opts.Logger, wake: make(chan struct{}, 1)}
	if u.log == nil {
		u.log = slog.New(slog.DiscardHandler)
	}
	return u, nil
}

// SetIngresses replaces the set of Ingresses whose status is ours to
// write. It does not block; the leader acts on the latest set.
func (u *Updater) SetIngresses(ours []types.NamespacedName) {
	ours = slices.Clone(ours)
	slices.SortFunc(ours, func(a, b types.NamespacedName) int { return strings.Compare(a.String(), b.String()) })
	u.mu.Lock()
	changed := !slices.Equal(u.ours, ours)
	u.ours = ours
	u.mu.Unlock()
	if changed {
		select {
		case u.wake <- struct{}{}:
		default:
		}
	}
}

// Leading reports whether this replica is the leader now.
func (u *Updater) Leading() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.leading
}

// Run campaigns until ctx ends, writing status whenever it leads. On
// return it has released the Lease if it held it.
func (u *Updater) Run(ctx context.Context) error {
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: u.opts.Namespace, Name: u.opts.LeaseName},
		Client:     u.opts.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: u.opts.Identity},
	}
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		Name:            u.opts.LeaseName,
		LeaseDuration:   u.opts.LeaseDuration,
		RenewDeadline:   u.opts.RenewDeadline,
		RetryPeriod:     u.opts.RetryPeriod,
		ReleaseOnCancel: true,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: u.lead,
			OnStoppedLeading: func() {
				u.setLeading(false)
				u.log.Info("status: no longer the leader; not writing Ingress status", "identity", u.opts.Identity)
			},
			OnNewLeader: func(id string) {
				if id != u.opts.Identity {
					u.log.Info("status: another replica leads and writes Ingress status", "leader", id)
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("status: leader election: %w", err)
	}
	// Run returns when leadership is lost: campaign again until ctx ends.
	for ctx.Err() == nil {
		le.Run(ctx)
	}
	return nil
}

func (u *Updater) setLeading(v bool) {
	u.mu.Lock()
	u.leading = v
	u.mu.Unlock()
}

// lead writes status until ctx (leadership) ends.
func (u *Updater) lead(ctx context.Context) {
	u.setLeading(true)
	u.log.Info("status: leading; writing Ingress status", "identity", u.opts.Identity)
	t := time.NewTicker(u.opts.Resync)
	defer t.Stop()
	for {
		if err := u.sync(ctx); err != nil && ctx.Err() == nil {
			u.log.Warn("status: cannot write Ingress status; retrying", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-u.wake:
		case <-t.C:
		}
	}
}

// sync writes the published addresses on every Ingress of ours whose
// status differs.
func (u *Updater) sync(ctx context.Context) error {
	want, err := u.addresses(ctx)
	if err != nil {
		return err
	}
	if want == nil {
		return nil // nothing to publish
	}
	u.mu.Lock()
	ours := u.ours
	u.mu.Unlock()
	var errs []error
	for _, n := range ours {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := u.write(ctx, n, want); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// addresses returns what to publish, or nil for nothing.
func (u *Updater) addresses(ctx context.Context) ([]networkingv1.IngressLoadBalancerIngress, error) {
	if u.opts.PublishService == "" {
		return Addresses(u.opts.PublishAddresses), nil
	}
	ns, name, _ := strings.Cut(u.opts.PublishService, "/")
	svc, err := u.opts.Client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("publish service %s: %w", u.opts.PublishService, err)
	}
	out := []networkingv1.IngressLoadBalancerIngress{}
	for _, in := range svc.Status.LoadBalancer.Ingress {
		e := networkingv1.IngressLoadBalancerIngress{IP: in.IP, Hostname: in.Hostname}
		for _, p := range in.Ports {
			e.Ports = append(e.Ports, networkingv1.IngressPortStatus{Port: p.Port, Protocol: p.Protocol, Error: p.Error})
		}
		out = append(out, e)
	}
	// A Service without a load balancer (yet) publishes its external IPs.
	if len(out) == 0 {
		out = Addresses(svc.Spec.ExternalIPs)
	}
	return out, nil
}

// Addresses turns IPs and host names into load balancer status entries,
// in the order given.
func Addresses(list []string) []networkingv1.IngressLoadBalancerIngress {
	if len(list) == 0 {
		return nil
	}
	out := make([]networkingv1.IngressLoadBalancerIngress, 0, len(list))
	for _, a := range list {
		if net.ParseIP(a) != nil {
			out = append(out, networkingv1.IngressLoadBalancerIngress{IP: a})
		} else {
			out = append(out, networkingv1.IngressLoadBalancerIngress{Hostname: a})
		}
	}
	return out
}

// write sets one Ingress's status if it differs (a compare-and-swap on
// resourceVersion, retried on conflict). A deleted Ingress is skipped.
func (u *Updater) write(ctx context.Context, n types.NamespacedName, want []networkingv1.IngressLoadBalancerIngress) error {
	ingresses := u.opts.Client.NetworkingV1().Ingresses(n.Namespace)
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		ing, err := ingresses.Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if equalStatus(ing.Status.LoadBalancer.Ingress, want) {
			return nil
		}
		ing.Status.LoadBalancer.Ingress = want
		_, err = ingresses.UpdateStatus(ctx, ing, metav1.UpdateOptions{})
		if err == nil {
			u.log.Info("status: wrote Ingress status", "ingress", n.String(), "loadBalancer", describe(want))
		}
		return err
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ingress %s: status.loadBalancer: %w", n, err)
	}
	return nil
}

func equalStatus(a, b []networkingv1.IngressLoadBalancerIngress) bool {
	return slices.EqualFunc(a, b, func(x, y networkingv1.IngressLoadBalancerIngress) bool {
		return x.IP == y.IP && x.Hostname == y.Hostname && slices.EqualFunc(x.Ports, y.Ports, func(p, q networkingv1.IngressPortStatus) bool {
			return p.Port == q.Port && p.Protocol == q.Protocol && ptrEq(p.Error, q.Error)
		})
	})
}

func ptrEq(a, b *string) bool { return a == b || a != nil && b != nil && *a == *b }

func describe(in []networkingv1.IngressLoadBalancerIngress) string {
	var parts []string
	for _, e := range in {
		if e.IP != "" {
			parts = append(parts, e.IP)
		} else {
			parts = append(parts, e.Hostname)
		}
	}
	return strings.Join(parts, ",")
}
