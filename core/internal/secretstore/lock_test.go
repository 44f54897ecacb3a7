package secretstore_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/sluicegw/sluice/core/internal/secretstore"
)

// A renewal that races with another renewal of the same holder (the
// background renewer and certmagic's RenewLockLease) meets a conflict on
// resourceVersion: the holder still holds the lock, so RenewLockLease
// tries again instead of failing certmagic's issuance ("unable to renew
// lock lease").
func TestRenewLockLeaseRetriesOwnConflict(t *testing.T) {
	client := fake.NewClientset()
	s, err := secretstore.New(secretstore.Options{Client: client, Namespace: "sluice", Identity: "a", LeaseDuration: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if ok, err := s.TryLock(ctx, "issue_cert_a.test"); !ok || err != nil {
		t.Fatalf("TryLock = %v, %v", ok, err)
	}
	defer s.Unlock(ctx, "issue_cert_a.test")
	var conflicts atomic.Int32
	client.PrependReactor("update", "leases", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if conflicts.Add(1) == 1 {
			return true, nil, apierrors.NewConflict(coordinationv1.Resource("leases"), "x", nil)
		}
		return false, nil, nil
	})
	if err := s.RenewLockLease(ctx, "issue_cert_a.test", time.Hour); err != nil {
		t.Errorf("RenewLockLease after one conflict: %v", err)
	}
	if n := conflicts.Load(); n != 2 {
		t.Errorf("Lease updates = %d, want 2 (a conflict, then the renewal)", n)
	}
}

// Unlock's delete is conditional on the resourceVersion it read; when the
// Lease changed in between but is still this holder's (a renewal that
// raced), Unlock reads it again and deletes it, rather than leaving a
// Lease nobody renews for others to wait out.
func TestUnlockRetriesOwnConflict(t *testing.T) {
	client := fake.NewClientset()
	s, err := secretstore.New(secretstore.Options{Client: client, Namespace: "sluice", Identity: "a", LeaseDuration: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if ok, err := s.TryLock(ctx, "issue_cert_a.test"); !ok || err != nil {
		t.Fatalf("TryLock = %v, %v", ok, err)
	}
	var conflicts atomic.Int32
	client.PrependReactor("delete", "leases", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if conflicts.Add(1) == 1 {
			return true, nil, apierrors.NewConflict(coordinationv1.Resource("leases"), "x", nil)
		}
		return false, nil, nil
	})
	if err := s.Unlock(ctx, "issue_cert_a.test"); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	list, err := client.CoordinationV1().Leases("sluice").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 0 {
		t.Errorf("after Unlock, %d Leases remain (holder %q)", len(list.Items), *list.Items[0].Spec.HolderIdentity)
	}
}
