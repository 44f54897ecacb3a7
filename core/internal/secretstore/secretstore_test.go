package secretstore_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/sluicegw/sluice/core/internal/secretstore"
	"github.com/sluicegw/sluice/core/internal/secretstore/storagetest"
	"github.com/sluicegw/sluice/internal/kubetest"
)

// testLease is the lease of the tests' locks: short, so a dead holder's
// lock is taken over quickly.
const testLease = 2 * time.Second

// open returns a Storage on the namespace that desc ("KUBECONFIG|NS") names.
func open(t testing.TB, desc string) certmagic.Storage {
	kubeconfig, ns, _ := strings.Cut(desc, "|")
	s, err := secretstore.New(secretstore.Options{
		Client:        client(t, kubeconfig),
		Namespace:     ns,
		Identity:      fmt.Sprintf("test-%d", os.Getpid()),
		LeaseDuration: testLease,
		PollInterval:  50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func client(t testing.TB, kubeconfig string) kubernetes.Interface {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var nsSeq atomic.Int32

func newNamespace(t testing.TB, c kubernetes.Interface) string {
	name := fmt.Sprintf("store-%d", nsSeq.Add(1))
	_, err := c.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return name
}

// The conformance suite on a real kube-apiserver, and the Secret
// storage's own promises beside it.
func TestSecretStorage(t *testing.T) {
	if storagetest.IsHelper() {
		storagetest.Helper(t, open)
		return
	}
	c := kubetest.Start(t)
	storagetest.Run(t, storagetest.Factory{
		New: func(t testing.TB) (certmagic.Storage, string) {
			desc := c.Kubeconfig + "|" + newNamespace(t, c.Client)
			return open(t, desc), desc
		},
		Open:         open,
		Expiry:       testLease + time.Second,
		MaxValueSize: secretstore.MaxValueSize,
	})

	ctx := context.Background()
	t.Run("Layout", func(t *testing.T) {
		ns := newNamespace(t, c.Client)
		s := open(t, c.Kubeconfig+"|"+ns)
		key := "certificates/acme-v02.api.letsencrypt.org-directory/*.example.com/*.example.com.crt"
		if err := s.Store(ctx, key, []byte("pem")); err != nil {
			t.Fatal(err)
		}
		sec, err := c.Client.CoreV1().Secrets(ns).Get(ctx, secretstore.SecretName(key), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if errs := validation.IsDNS1123Subdomain(sec.Name); len(errs) > 0 {
			t.Errorf("Secret name %q: %v", sec.Name, errs)
		}
		if sec.Annotations[secretstore.AnnotationKey] != key || sec.Labels["sluice.io/storage"] != "certmagic" || string(sec.Data["value"]) != "pem" {
			t.Errorf("Secret = annotations %v labels %v data %q", sec.Annotations, sec.Labels, sec.Data)
		}
	})
	t.Run("ForeignSecretAtHashedName", func(t *testing.T) {
		// A Secret at a key's name that holds another key is refused, not
		// returned or overwritten.
		ns := newNamespace(t, c.Client)
		s := open(t, c.Kubeconfig+"|"+ns)
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: secretstore.SecretName("k"), Namespace: ns,
			Annotations: map[string]string{secretstore.AnnotationKey: "not-k"}}}
		if _, err := c.Client.CoreV1().Secrets(ns).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Load(ctx, "k"); err == nil || !strings.Contains(err.Error(), `holds key "not-k"`) {
			t.Errorf("Load: %v, want a collision error", err)
		}
		if err := s.Store(ctx, "k", []byte("v")); err == nil || !strings.Contains(err.Error(), `holds key "not-k"`) {
			t.Errorf("Store: %v, want a collision error", err)
		}
	})
	t.Run("OtherLabelIsAnotherStorage", func(t *testing.T) {
		ns := newNamespace(t, c.Client)
		a := open(t, c.Kubeconfig+"|"+ns)
		b, err := secretstore.New(secretstore.Options{Client: c.Client, Namespace: ns, Label: "app=other"})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Store(ctx, "dir/a", []byte("a")); err != nil {
			t.Fatal(err)
		}
		if got, err := b.List(ctx, "dir", true); err == nil {
			t.Errorf("List on another label saw %q", got)
		}
	})
	t.Run("OtherLabelKeepsItsOwnKeysAndLocks", func(t *testing.T) {
		// Two gateways with different labels in one namespace: the same
		// key and lock name are two Secrets and two Leases, not one.
		ns := newNamespace(t, c.Client)
		a := open(t, c.Kubeconfig+"|"+ns)
		b, err := secretstore.New(secretstore.Options{Client: c.Client, Namespace: ns, Label: "app=other"})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Store(ctx, "acme/account.json", []byte("a")); err != nil {
			t.Fatal(err)
		}
		if err := b.Store(ctx, "acme/account.json", []byte("b")); err != nil {
			t.Fatal(err)
		}
		if v, err := a.Load(ctx, "acme/account.json"); err != nil || string(v) != "a" {
			t.Errorf("Load from the default label = %q, %v; want \"a\"", v, err)
		}
		if err := b.Delete(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
		if v, err := a.Load(ctx, "acme/account.json"); err != nil || string(v) != "a" {
			t.Errorf("after Delete on the other label, Load = %q, %v; want \"a\"", v, err)
		}
		if ok, err := a.(certmagic.TryLocker).TryLock(ctx, "issue"); !ok || err != nil {
			t.Fatalf("TryLock on the default label = %v, %v", ok, err)
		}
		defer a.Unlock(ctx, "issue")
		if ok, err := b.TryLock(ctx, "issue"); !ok || err != nil {
			t.Errorf("TryLock on the other label of a lock the default label holds = %v, %v; want true", ok, err)
		} else {
			b.Unlock(ctx, "issue")
		}
	})
	t.Run("TakenOverLockIsLeftAlone", func(t *testing.T) {
		// A holder cut off for a lease finds its lock taken: renewing it
		// fails, and Unlock does not delete the new holder's Lease.
		ns := newNamespace(t, c.Client)
		s := open(t, c.Kubeconfig+"|"+ns)
		if err := s.Lock(ctx, "x"); err != nil {
			t.Fatal(err)
		}
		leases := c.Client.CoordinationV1().Leases(ns)
		l, err := leases.Get(ctx, secretstore.LeaseName("x"), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		intruder := "intruder"
		l.Spec.HolderIdentity = &intruder
		if _, err := leases.Update(ctx, l, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		err = s.(certmagic.LockLeaseRenewer).RenewLockLease(ctx, "x", time.Minute)
		if err == nil || !strings.Contains(err.Error(), `held by "intruder"`) {
			t.Errorf("RenewLockLease of a lock taken over: %v", err)
		}
		if err := s.Unlock(ctx, "x"); err != nil {
			t.Errorf("Unlock: %v", err)
		}
		l, err = leases.Get(ctx, secretstore.LeaseName("x"), metav1.GetOptions{})
		if err != nil || *l.Spec.HolderIdentity != "intruder" {
			t.Errorf("after Unlock, the new holder's Lease: %v, %v", l, err)
		}
	})
	t.Run("ConcurrentStoresOneKey", func(t *testing.T) {
		// Compare-and-swap with retry: every Store of many goroutines on
		// one key succeeds, and the key holds one of their values.
		ns := newNamespace(t, c.Client)
		s := open(t, c.Kubeconfig+"|"+ns)
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := range 16 {
			wg.Go(func() {
				if err := s.Store(ctx, "one/key", []byte(fmt.Sprint(i))); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		v, err := s.Load(ctx, "one/key")
		if err != nil || len(v) == 0 {
			t.Errorf("Load = %q, %v", v, err)
		}
	})
}

func TestNewRefusesBadOptions(t *testing.T) {
	c := kubernetes.New(nil)
	for _, tc := range []struct {
		name string
		opts secretstore.Options
		want string
	}{
		{"no client", secretstore.Options{Namespace: "x"}, "no Kubernetes client"},
		{"bad namespace", secretstore.Options{Client: c, Namespace: "Bad_NS"}, `namespace "Bad_NS"`},
		{"label without value", secretstore.Options{Client: c, Namespace: "x", Label: "app"}, `label "app" is not key=value`},
		{"bad label key", secretstore.Options{Client: c, Namespace: "x", Label: "a b=c"}, `label "a b=c": key`},
		{"bad label value", secretstore.Options{Client: c, Namespace: "x", Label: "a=b c"}, `label "a=b c": value`},
		{"short lease", secretstore.Options{Client: c, Namespace: "x", LeaseDuration: time.Millisecond}, "under 1s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := secretstore.New(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestNamesAreValidAndDistinct(t *testing.T) {
	seen := map[string]string{}
	for _, k := range []string{"a.b", "a_b", "a-b", "A.B", "", strings.Repeat("x/", 500)} {
		n := secretstore.SecretName(k)
		if errs := validation.IsDNS1123Subdomain(n); len(errs) > 0 {
			t.Errorf("SecretName(%q) = %q: %v", k, n, errs)
		}
		if prev, dup := seen[n]; dup {
			t.Errorf("SecretName(%q) = SecretName(%q)", k, prev)
		}
		seen[n] = k
	}
}
