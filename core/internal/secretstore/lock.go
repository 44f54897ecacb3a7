package secretstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// errLost means a lock this process held is now someone else's.
var errLost = errors.New("lock lost")

// Lock blocks until it holds the lock name or ctx ends. It tries every
// PollInterval; a Lease left by a holder that stopped renewing is taken
// over after the lease duration.
func (s *Storage) Lock(ctx context.Context, name string) error {
	for {
		ok, err := s.TryLock(ctx, name)
		if ok {
			return nil
		}
		if err != nil && ctx.Err() != nil {
			return err
		}
		if err != nil {
			s.log.Warn("secret storage: lock attempt failed; retrying", "lock", name, "error", err)
		}
		t := time.NewTimer(s.poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("secret storage: lock %q: %w", name, ctx.Err())
		case <-t.C:
		}
	}
}

// TryLock takes the lock name if it is free (no Lease, or one whose holder
// stopped renewing it a lease duration ago) and reports whether it did.
// It does not wait.
func (s *Storage) TryLock(ctx context.Context, name string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.Lock()
	_, mine := s.held[name]
	s.mu.Unlock()
	if mine {
		return false, nil // another caller of this process holds it
	}
	leases := s.client.CoordinationV1().Leases(s.ns)
	holder := s.identity + "/" + randomSuffix()
	now := metav1.NewMicroTime(s.now())
	secs := int32((s.lease + time.Second - 1) / time.Second)
	cur, err := leases.Get(ctx, s.leaseName(name), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		l := &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{
				Name:        s.leaseName(name),
				Namespace:   s.ns,
				Labels:      map[string]string{s.labelKey: s.labelVal},
				Annotations: map[string]string{AnnotationKey: name},
			},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, AcquireTime: &now, RenewTime: &now},
		}
		if _, err := leases.Create(ctx, l, metav1.CreateOptions{}); err != nil {
			if apierrors.IsAlreadyExists(err) {
				return false, nil
			}
			return false, fmt.Errorf("secret storage: lock %q: %w", name, err)
		}
	case err != nil:
		return false, fmt.Errorf("secret storage: lock %q: %w", name, err)
	default:
		if !s.expired(name, cur) {
			return false, nil
		}
		next := cur.DeepCopy()
		transitions := int32(0)
		if next.Spec.LeaseTransitions != nil {
			transitions = *next.Spec.LeaseTransitions
		}
		transitions++
		next.Spec = coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, AcquireTime: &now, RenewTime: &now, LeaseTransitions: &transitions}
		// Update carries cur's resourceVersion: if anyone renewed or took
		// it meanwhile, this conflicts and we do not hold it.
		if _, err := leases.Update(ctx, next, metav1.UpdateOptions{}); err != nil {
			if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
				return false, nil
			}
			return false, fmt.Errorf("secret storage: lock %q: take over from %s: %w", name, deref(cur.Spec.HolderIdentity), err)
		}
		s.log.Info("secret storage: took over an expired lock", "lock", name, "previous_holder", deref(cur.Spec.HolderIdentity))
	}
	s.hold(name, holder)
	return true, nil
}

// expired reports whether the Lease l has not changed for its duration,
// as seen on the local clock since this process first saw that version
// (so the holders' clocks do not matter), or it names no holder.
func (s *Storage) expired(name string, l *coordinationv1.Lease) bool {
	if deref(l.Spec.HolderIdentity) == "" {
		return true
	}
	d := s.lease
	if l.Spec.LeaseDurationSeconds != nil {
		d = time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.observed[name]
	if !ok || o.resourceVersion != l.ResourceVersion {
		s.observed[name] = observation{l.ResourceVersion, now}
		return false
	}
	return now.Sub(o.since) >= d
}

// hold records the lock as held and starts renewing it.
func (s *Storage) hold(name, holder string) {
	ctx, stop := context.WithCancel(context.Background())
	h := &heldLock{holder: holder, stop: stop, done: make(chan struct{})}
	s.mu.Lock()
	s.held[name] = h
	delete(s.observed, name)
	s.mu.Unlock()
	go func() {
		defer close(h.done)
		t := time.NewTicker(s.lease / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			err := s.renew(ctx, name, holder, 0)
			switch {
			case err == nil || ctx.Err() != nil:
			case errors.Is(err, errLost):
				// Someone took it over (we were cut off for a lease):
				// renewing again cannot win it back.
				s.log.Error("secret storage: a held lock was taken over; no longer renewing it", "lock", name, "error", err)
				return
			default:
				s.log.Warn("secret storage: cannot renew a held lock; retrying", "lock", name, "error", err)
			}
		}
	}()
}

// renew sets the Lease's renewTime (and its duration, when d > 0) if
// holder still holds it. A conflict is another renewal by this holder
// (the background renewer and RenewLockLease race): it reads the Lease
// again and checks the holder again.
func (s *Storage) renew(ctx context.Context, name, holder string, d time.Duration) error {
	leases := s.client.CoordinationV1().Leases(s.ns)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := leases.Get(ctx, s.leaseName(name), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("secret storage: lock %q: its Lease was deleted: %w", name, errLost)
		}
		if err != nil {
			return fmt.Errorf("secret storage: lock %q: %w", name, err)
		}
		if got := deref(cur.Spec.HolderIdentity); got != holder {
			return fmt.Errorf("secret storage: lock %q is held by %q, not by this process (%s): %w", name, got, holder, errLost)
		}
		now := metav1.NewMicroTime(s.now())
		cur.Spec.RenewTime = &now
		if d > 0 {
			secs := int32((d + time.Second - 1) / time.Second)
			cur.Spec.LeaseDurationSeconds = &secs
		}
		if _, err := leases.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("secret storage: lock %q: renew: %w", name, err)
		}
		return nil
	})
}

// RenewLockLease extends the lock name, which this Storage must hold, to
// leaseDuration from now (certmagic calls it before long retries).
func (s *Storage) RenewLockLease(ctx context.Context, name string, leaseDuration time.Duration) error {
	s.mu.Lock()
	h, ok := s.held[name]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("secret storage: renew lock %q: not held by this process", name)
	}
	return s.renew(ctx, name, h.holder, leaseDuration)
}

// Unlock releases the lock name: it stops renewing it and deletes its
// Lease if this holder still holds it. It is an error to unlock a lock
// this Storage does not hold.
func (s *Storage) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	h, ok := s.held[name]
	delete(s.held, name)
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("secret storage: unlock %q: not held by this process", name)
	}
	h.stop()
	<-h.done
	leases := s.client.CoordinationV1().Leases(s.ns)
	// The delete is conditional on the version read: a conflict means the
	// Lease changed since; read it again to see whether it is still ours.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := leases.Get(ctx, s.leaseName(name), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if deref(cur.Spec.HolderIdentity) != h.holder {
			return nil // taken over after we stopped renewing: not ours to delete
		}
		rv := cur.ResourceVersion
		err = leases.Delete(ctx, cur.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &rv}})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("secret storage: unlock %q: %w", name, err)
	}
	return nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
