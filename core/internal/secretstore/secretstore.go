// Package secretstore is a certmagic.Storage kept in Kubernetes Secrets of
// one namespace, with locks kept as coordination.k8s.io/v1 Leases, so that
// gateway replicas share one set of certificates, ACME accounts and locks
// (one ACME order per name, whichever replica asks).
//
// # Layout
//
//   - Each key is one Secret named "sluice-storage-" + the first 40 hex
//     digits of SHA-256(key) (names are limited to lowercase [a-z0-9.-], so
//     keys cannot be used as names; a hash cannot collide in practice, and
//     the original key is kept in the annotation AnnotationKey and checked
//     on every read). With a label other than DefaultLabel, the hash is of
//     the label, a newline and the key, so that storages with different
//     labels in one namespace never share a Secret or a Lease. The value is data["value"]; the modification time is
//     the annotation AnnotationModified.
//   - Each Secret carries the storage label (Options.Label) and one label
//     per ancestor "directory" of its key (DirLabelPrefix + hash of the
//     directory), so List and Exists of a directory ask the API server for
//     exactly the Secrets under it.
//   - Each lock is one Lease named "sluice-lock-" + hash of the lock name,
//     with the name in AnnotationKey. Its holder renews it every third of
//     the lease duration while it holds it; Unlock deletes it. A Lease that
//     nobody renewed for a lease duration (measured on the local clock, so
//     clock skew between replicas does not matter) is taken over.
//
// # Notes
//
//   - Every write is a compare-and-swap on resourceVersion (Update after
//     Get, Create when absent), retried on conflict.
//   - Values over MaxValueSize (the API server's Secret limit) are refused
//     with an error naming the key.
//   - A Storage is safe for concurrent use. Lock and TryLock distinguish
//     callers within one process too (each acquisition is its own holder).
package secretstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

const (
	// DefaultLabel marks (and selects) the Secrets and Leases of the storage.
	DefaultLabel = "sluice.io/storage=certmagic"
	// AnnotationKey holds the original storage key (or lock name).
	AnnotationKey = "sluice.io/storage-key"
	// AnnotationModified holds the time of the last Store (RFC 3339, ns).
	AnnotationModified = "sluice.io/storage-modified"
	// DirLabelPrefix prefixes the labels naming a key's ancestor folders.
	DirLabelPrefix = "dir.storage.sluice.io/"
	// MaxValueSize is the largest value Store accepts: the API server
	// refuses Secrets whose data exceed 1 MiB.
	MaxValueSize = 1 << 20

	// DefaultLeaseDuration is how long a lock survives its dead holder.
	DefaultLeaseDuration = 20 * time.Second
	// DefaultPollInterval is how often a blocked Lock tries again.
	DefaultPollInterval = time.Second

	secretPrefix = "sluice-storage-"
	leasePrefix  = "sluice-lock-"
	valueField   = "value"
	hashDigits   = 40 // 160 bits of SHA-256
)

// Options configure a Storage.
type Options struct {
	// Client reaches the API server. Required.
	Client kubernetes.Interface
	// Namespace holds the Secrets and Leases. Required.
	Namespace string
	// Label is "key=value": every Secret and Lease of the storage carries
	// it and List selects on it. Empty means DefaultLabel.
	Label string
	// Identity names this process in the Leases' holderIdentity (the pod
	// name in a cluster). Empty means the host name.
	Identity string
	// LeaseDuration is how long a lock outlives its holder's last renewal.
	// Zero means DefaultLeaseDuration.
	LeaseDuration time.Duration
	// PollInterval is how often a blocked Lock tries again. Zero means
	// DefaultPollInterval.
	PollInterval time.Duration
	// Logger receives lock renewal failures. Nil discards them.
	Logger *slog.Logger
}

// Storage is a certmagic.Storage backed by Secrets and Leases. New makes
// it; the zero value is not usable.
type Storage struct {
	client   kubernetes.Interface
	ns       string
	labelKey string
	labelVal string
	salt     string // hashed before keys and lock names: "" for DefaultLabel
	identity string
	lease    time.Duration
	poll     time.Duration
	log      *slog.Logger
	now      func() time.Time
	mu       sync.Mutex
	held     map[string]*heldLock   // by lock name: the locks this Storage holds
	observed map[string]observation // by lock name: another holder's Lease as last seen
}

// heldLock is a lock this process holds.
type heldLock struct {
	holder string
	stop   context.CancelFunc
	done   chan struct{}
}

// observation is when a Lease version was first seen here.
type observation struct {
	resourceVersion string
	since           time.Time
}

// New checks opts and returns a Storage. It contacts no server.
func New(opts Options) (*Storage, error) {
	if opts.Client == nil {
		return nil, errors.New("secret storage: no Kubernetes client")
	}
	if errs := validation.IsDNS1123Label(opts.Namespace); len(errs) > 0 {
		return nil, fmt.Errorf("secret storage: namespace %q: %s", opts.Namespace, strings.Join(errs, "; "))
	}
	label := opts.Label
	if label == "" {
		label = DefaultLabel
	}
	key, val, err := ParseLabel(label)
	if err != nil {
		return nil, fmt.Errorf("secret storage: %w", err)
	}
	salt := ""
	if label != DefaultLabel {
		salt = label + "\n"
	}
	s := &Storage{
		client:   opts.Client,
		ns:       opts.Namespace,
		labelKey: key,
		labelVal: val,
		salt:     salt,
		identity: opts.Identity,
		lease:    opts.LeaseDuration,
		poll:     opts.PollInterval,
		log:      opts.Logger,
		now:      time.Now,
		held:     map[string]*heldLock{},
		observed: map[string]observation{},
	}
	if s.identity == "" {
		s.identity, _ = os.Hostname()
		if s.identity == "" {
			s.identity = "sluice"
		}
	}
	if s.lease <= 0 {
		s.lease = DefaultLeaseDuration
	}
	if s.lease < time.Second {
		return nil, fmt.Errorf("secret storage: lease duration %s is under 1s (Leases count whole seconds)", s.lease)
	}
	if s.poll <= 0 {
		s.poll = DefaultPollInterval
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// ParseLabel splits "key=value" and checks both parts are a valid label.
func ParseLabel(s string) (key, value string, err error) {
	key, value, ok := strings.Cut(s, "=")
	if !ok {
		return "", "", fmt.Errorf("label %q is not key=value", s)
	}
	if errs := validation.IsQualifiedName(key); len(errs) > 0 {
		return "", "", fmt.Errorf("label %q: key: %s", s, strings.Join(errs, "; "))
	}
	if errs := validation.IsValidLabelValue(value); len(errs) > 0 {
		return "", "", fmt.Errorf("label %q: value: %s", s, strings.Join(errs, "; "))
	}
	return key, value, nil
}

// String names the storage in certmagic's logs.
func (s *Storage) String() string {
	return fmt.Sprintf("SecretStorage:%s/%s=%s", s.ns, s.labelKey, s.labelVal)
}

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:hashDigits]
}

// SecretName is the name of the Secret that holds key, with DefaultLabel.
func SecretName(key string) string { return secretPrefix + hash(key) }

// LeaseName is the name of the Lease that is the lock name, with
// DefaultLabel.
func LeaseName(name string) string { return leasePrefix + hash(name) }

func (s *Storage) secretName(key string) string { return secretPrefix + hash(s.salt+key) }

func (s *Storage) leaseName(name string) string { return leasePrefix + hash(s.salt+name) }

func dirLabel(dir string) string { return DirLabelPrefix + hash(dir) }

// cleanKey drops leading and trailing slashes: "a/b/" and "a/b" are one key.
func cleanKey(key string) string { return strings.Trim(key, "/") }

// parents returns the ancestor folders of key, "" (the root) first.
func parents(key string) []string {
	out := []string{""}
	for i := range len(key) {
		if key[i] == '/' {
			out = append(out, key[:i])
		}
	}
	return out
}

func (s *Storage) secretFor(key string, value []byte, now time.Time) *corev1.Secret {
	l := map[string]string{s.labelKey: s.labelVal}
	for _, p := range parents(key) {
		l[dirLabel(p)] = ""
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:      s.secretName(key),
			Namespace: s.ns,
			Labels:    l,
			Annotations: map[string]string{
				AnnotationKey:      key,
				AnnotationModified: now.UTC().Format(time.RFC3339Nano),
			},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{valueField: value},
	}
}

// storeBackoff spaces the retries of a Store that lost a race (a conflict
// on resourceVersion, or a Create beaten by another): enough rounds for
// every replica of a large deployment to write the same key at once.
var storeBackoff = wait.Backoff{Steps: 20, Duration: 10 * time.Millisecond, Factor: 1.5, Jitter: 0.5, Cap: time.Second}

// Store puts value at key, creating or replacing its Secret.
func (s *Storage) Store(ctx context.Context, key string, value []byte) error {
	key = cleanKey(key)
	if key == "" {
		return errors.New("secret storage: store: empty key")
	}
	if len(value) > MaxValueSize {
		return fmt.Errorf("secret storage: key %q: value of %d bytes is over the %d-byte Secret limit", key, len(value), MaxValueSize)
	}
	secrets := s.client.CoreV1().Secrets(s.ns)
	err := retry.OnError(storeBackoff, func(err error) bool {
		return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)
	}, func() error {
		want := s.secretFor(key, value, s.now())
		cur, err := secrets.Get(ctx, want.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = secrets.Create(ctx, want, metav1.CreateOptions{})
			return err
		}
		if err != nil {
			return err
		}
		if k := cur.Annotations[AnnotationKey]; k != key {
			return fmt.Errorf("Secret %s/%s holds key %q, not %q (hash collision or foreign Secret)", s.ns, cur.Name, k, key)
		}
		// Keep what others added (labels, annotations); the update carries
		// cur's resourceVersion, so a concurrent write makes it conflict.
		next := cur.DeepCopy()
		if next.Labels == nil {
			next.Labels = map[string]string{}
		}
		if next.Annotations == nil {
			next.Annotations = map[string]string{}
		}
		for k, v := range want.Labels {
			next.Labels[k] = v
		}
		for k, v := range want.Annotations {
			next.Annotations[k] = v
		}
		next.Data = want.Data
		next.StringData = nil
		_, err = secrets.Update(ctx, next, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("secret storage: store %q: %w", key, err)
	}
	return nil
}

// get returns the Secret of key, or an error wrapping fs.ErrNotExist.
func (s *Storage) get(ctx context.Context, key string) (*corev1.Secret, error) {
	sec, err := s.client.CoreV1().Secrets(s.ns).Get(ctx, s.secretName(key), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("secret storage: key %q: %w", key, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("secret storage: key %q: %w", key, err)
	}
	if k := sec.Annotations[AnnotationKey]; k != key {
		return nil, fmt.Errorf("secret storage: key %q: Secret %s/%s holds key %q (hash collision or foreign Secret)", key, s.ns, sec.Name, k)
	}
	return sec, nil
}

// Load returns the value at key; a missing key is fs.ErrNotExist.
func (s *Storage) Load(ctx context.Context, key string) ([]byte, error) {
	sec, err := s.get(ctx, cleanKey(key))
	if err != nil {
		return nil, err
	}
	return sec.Data[valueField], nil
}

// under lists the Secrets below folder dir ("" is the root).
func (s *Storage) under(ctx context.Context, dir string, limit int64) ([]corev1.Secret, error) {
	sel := labels.Set{s.labelKey: s.labelVal, dirLabel(dir): ""}.AsSelector().String()
	list, err := s.client.CoreV1().Secrets(s.ns).List(ctx, metav1.ListOptions{LabelSelector: sel, Limit: limit})
	if err != nil {
		return nil, err
	}
	// Only keys really under dir (a hash-matching label is not proof).
	out := list.Items[:0]
	for _, sec := range list.Items {
		if k, ok := sec.Annotations[AnnotationKey]; ok && (dir == "" || strings.HasPrefix(k, dir+"/")) {
			out = append(out, sec)
		}
	}
	return out, nil
}

// Delete removes key, and every key below it when it is a folder. A
// missing key is not an error.
func (s *Storage) Delete(ctx context.Context, key string) error {
	key = cleanKey(key)
	secrets := s.client.CoreV1().Secrets(s.ns)
	del := func(name string) error {
		err := secrets.Delete(ctx, name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("secret storage: delete %q: %w", key, err)
		}
		return nil
	}
	if key != "" {
		if err := del(s.secretName(key)); err != nil {
			return err
		}
	}
	below, err := s.under(ctx, key, 0)
	if err != nil {
		return fmt.Errorf("secret storage: delete %q: %w", key, err)
	}
	for _, sec := range below {
		if err := del(sec.Name); err != nil {
			return err
		}
	}
	return nil
}

// Exists reports whether key is a key or a folder of keys. It costs one
// GET, and one List (of at most one item) when key is not a key.
func (s *Storage) Exists(ctx context.Context, key string) bool {
	key = cleanKey(key)
	if _, err := s.get(ctx, key); err == nil {
		return true
	}
	below, err := s.under(ctx, key, 1)
	return err == nil && len(below) > 0
}

// List returns the keys and folders directly in prefix, or (recursive)
// every key and folder below it, as the original key strings. A prefix
// with nothing under it is fs.ErrNotExist, as in certmagic.FileStorage.
func (s *Storage) List(ctx context.Context, prefix string, recursive bool) ([]string, error) {
	prefix = cleanKey(prefix)
	below, err := s.under(ctx, prefix, 0)
	if err != nil {
		return nil, fmt.Errorf("secret storage: list %q: %w", prefix, err)
	}
	if len(below) == 0 {
		return nil, fmt.Errorf("secret storage: list %q: %w", prefix, fs.ErrNotExist)
	}
	seen := map[string]bool{}
	var out []string
	add := func(k string) {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	for _, sec := range below {
		k := sec.Annotations[AnnotationKey]
		rest := k
		if prefix != "" {
			rest = k[len(prefix)+1:]
		}
		parts := strings.Split(rest, "/")
		if !recursive {
			parts = parts[:1]
		}
		for i := range parts {
			add(path.Join(prefix, strings.Join(parts[:i+1], "/")))
		}
	}
	slices.Sort(out)
	return out, nil
}

// Stat describes key: a key (IsTerminal, with its size and the time of its
// last Store) or a folder of keys.
func (s *Storage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	key = cleanKey(key)
	sec, err := s.get(ctx, key)
	if err == nil {
		mod, perr := time.Parse(time.RFC3339Nano, sec.Annotations[AnnotationModified])
		if perr != nil {
			mod = sec.CreationTimestamp.Time // written by something else
		}
		return certmagic.KeyInfo{Key: key, Modified: mod, Size: int64(len(sec.Data[valueField])), IsTerminal: true}, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return certmagic.KeyInfo{}, err
	}
	below, lerr := s.under(ctx, key, 1)
	if lerr != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("secret storage: stat %q: %w", key, lerr)
	}
	if len(below) == 0 {
		return certmagic.KeyInfo{}, err
	}
	return certmagic.KeyInfo{Key: key, IsTerminal: false}, nil
}

// Interface guards.
var (
	_ certmagic.Storage          = (*Storage)(nil)
	_ certmagic.TryLocker        = (*Storage)(nil)
	_ certmagic.LockLeaseRenewer = (*Storage)(nil)
)

func randomSuffix() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}
