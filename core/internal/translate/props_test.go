package translate_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluicegw/sluice/core/internal/manifest"
	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/core/internal/translate"
)

// goldenInputs decodes every golden case.
func goldenInputs(t testing.TB) map[string]translate.Input {
	t.Helper()
	paths, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no golden cases in testdata: %v", err)
	}
	out := make(map[string]translate.Input, len(paths))
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		in, _ := manifest.Decode(p, data)
		out[filepath.Base(p)] = in
	}
	return out
}

func deepCopy(in translate.Input) translate.Input {
	var out translate.Input
	for _, o := range in.Ingresses {
		out.Ingresses = append(out.Ingresses, o.DeepCopy())
	}
	for _, o := range in.IngressClasses {
		out.IngressClasses = append(out.IngressClasses, o.DeepCopy())
	}
	for _, o := range in.Services {
		out.Services = append(out.Services, o.DeepCopy())
	}
	for _, o := range in.EndpointSlices {
		out.EndpointSlices = append(out.EndpointSlices, o.DeepCopy())
	}
	for _, o := range in.Secrets {
		out.Secrets = append(out.Secrets, o.DeepCopy())
	}
	return out
}

// encode is the JSON of a translation's results.
func encode(s *model.Snapshot, ws []model.Warning) string {
	b, err := json.Marshal(struct {
		S *model.Snapshot
		W []model.Warning
	}{s, ws})
	if err != nil {
		panic(err) // a Snapshot always encodes
	}
	return string(b)
}

// TestTranslateDoesNotModifyInput checks that every golden input, objects
// and slice order, is unchanged by a translation.
func TestTranslateDoesNotModifyInput(t *testing.T) {
	for name, in := range goldenInputs(t) {
		before := deepCopy(in)
		translate.Translate(in, translate.Options{Now: now})
		if !reflect.DeepEqual(in, before) {
			t.Errorf("%s: Translate modified its input", name)
		}
	}
}

// TestTranslateIgnoresInputOrder shuffles every golden input: the result
// must not change.
func TestTranslateIgnoresInputOrder(t *testing.T) {
	r := mrand.New(mrand.NewPCG(1, 2))
	for name, in := range goldenInputs(t) {
		want := encode(translate.Translate(in, translate.Options{Now: now}))
		for range 10 {
			s := deepCopy(in)
			shuffle(r, s.Ingresses)
			shuffle(r, s.IngressClasses)
			shuffle(r, s.Services)
			shuffle(r, s.EndpointSlices)
			shuffle(r, s.Secrets)
			if got := encode(translate.Translate(s, translate.Options{Now: now})); got != want {
				t.Fatalf("%s: result depends on input order:\n got: %s\nwant: %s", name, got, want)
			}
			// Endpoint order inside a slice changes the indices that
			// warnings name, but not the snapshot.
			for _, es := range s.EndpointSlices {
				shuffle(r, es.Endpoints)
			}
			snap, _ := translate.Translate(s, translate.Options{Now: now})
			wantSnap, _ := translate.Translate(in, translate.Options{Now: now})
			if got, want := encode(snap, nil), encode(wantSnap, nil); got != want {
				t.Fatalf("%s: snapshot depends on endpoint order:\n got: %s\nwant: %s", name, got, want)
			}
		}
	}
}

func shuffle[T any](r *mrand.Rand, s []T) {
	r.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
}

// TestTranslateCertificate checks a certificate made now: its hosts, its
// expiry, PEM bytes copied from the Secret, and the wall clock when
// Options.Now is zero.
func TestTranslateCertificate(t *testing.T) {
	notAfter := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	crt, key := selfSigned(t, []string{"a.example.com", "*.b.example.com"}, time.Now().Add(-time.Hour), notAfter)
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "tls"},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: bytes.Clone(crt), corev1.TLSPrivateKeyKey: bytes.Clone(key)},
	}
	in := translate.Input{
		Ingresses: []*networkingv1.Ingress{
			ingress("default", "one", tlsFor("tls", "a.example.com"), rule("a.example.com", prefix("/", "web", 80))),
			ingress("default", "two", tlsFor("tls", "x.b.example.com", "*.b.example.com")),
		},
		Secrets: []*corev1.Secret{secret},
	}
	// Options.Now zero: the wall clock, at which the certificate is valid.
	snap, warnings := translate.Translate(in, translate.Options{})
	for _, w := range warnings {
		if strings.Contains(w.Message, "spec.tls") {
			t.Errorf("unexpected warning: %s", w)
		}
	}
	if len(snap.Certificates) != 1 {
		t.Fatalf("got %d certificates, want 1", len(snap.Certificates))
	}
	c := snap.Certificates[0]
	if want := (model.ObjectRef{Kind: "Secret", Namespace: "default", Name: "tls"}); c.Source != want {
		t.Errorf("Source = %v, want %v", c.Source, want)
	}
	if want := []string{"*.b.example.com", "a.example.com", "x.b.example.com"}; !reflect.DeepEqual(c.Hosts, want) {
		t.Errorf("Hosts = %q, want %q", c.Hosts, want)
	}
	if !c.NotAfter.Equal(notAfter) {
		t.Errorf("NotAfter = %v, want %v", c.NotAfter, notAfter)
	}
	if !bytes.Equal(c.CertPEM, crt) || !bytes.Equal(c.KeyPEM, key) {
		t.Error("CertPEM/KeyPEM are not the Secret's tls.crt/tls.key")
	}
	secret.Data[corev1.TLSCertKey][0] ^= 0xff
	if !bytes.Equal(c.CertPEM, crt) {
		t.Error("CertPEM shares memory with the Secret")
	}
	secret.Data[corev1.TLSCertKey][0] ^= 0xff

	// The same certificate a week later: expired, still served, warned.
	snap, warnings = translate.Translate(in, translate.Options{Now: time.Now().Add(7 * 24 * time.Hour)})
	if len(snap.Certificates) != 1 {
		t.Errorf("expired certificate not served: got %d certificates, want 1", len(snap.Certificates))
	}
	if !slices.ContainsFunc(warnings, func(w model.Warning) bool {
		return strings.HasPrefix(w.Message, "spec.tls[0].secretName: Secret default/tls: certificate expired at ")
	}) {
		t.Errorf("no expiry warning, got %v", warnings)
	}
}

func selfSigned(t testing.TB, names []string, notBefore, notAfter time.Time) (crt, key []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    notBefore,
		NotAfter:     notAfter,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// TestTranslateOddObjects feeds objects with every optional pointer nil and
// every list empty or holding zero values: no panic, and warnings instead.
func TestTranslateOddObjects(t *testing.T) {
	var pt networkingv1.PathType
	in := translate.Input{
		Ingresses: []*networkingv1.Ingress{
			{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{"kubernetes.io/ingress.class": "sluice"}}},
			{
				ObjectMeta: metav1.ObjectMeta{Name: "odd", Annotations: map[string]string{"kubernetes.io/ingress.class": "sluice"}},
				Spec: networkingv1.IngressSpec{
					DefaultBackend: &networkingv1.IngressBackend{Resource: &corev1.TypedLocalObjectReference{}},
					TLS:            []networkingv1.IngressTLS{{}, {Hosts: []string{""}, SecretName: "s"}},
					Rules: []networkingv1.IngressRule{{}, {IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
						Paths: []networkingv1.HTTPIngressPath{{}, {PathType: &pt}, {Path: "/", PathType: ptr(networkingv1.PathTypeExact),
							Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "s", Port: networkingv1.ServiceBackendPort{Name: "p"}}}}},
					}}}},
				},
			},
		},
		IngressClasses: []*networkingv1.IngressClass{{}},
		Services:       []*corev1.Service{{ObjectMeta: metav1.ObjectMeta{Name: "s"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "p"}}}}},
		EndpointSlices: []*discoveryv1.EndpointSlice{{
			ObjectMeta:  metav1.ObjectMeta{Name: "e", Labels: map[string]string{discoveryv1.LabelServiceName: "s"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{}, {Name: ptr("p")}, {Name: ptr("p"), Port: ptr[int32](0)}, {Name: ptr("p"), Port: ptr[int32](80)}},
			Endpoints:   []discoveryv1.Endpoint{{}, {Addresses: []string{""}}, {Addresses: []string{"10.0.0.1"}}},
		}},
		Secrets: []*corev1.Secret{{ObjectMeta: metav1.ObjectMeta{Name: "s"}, Type: corev1.SecretTypeTLS, Data: map[string][]byte{
			corev1.TLSCertKey: []byte("x"), corev1.TLSPrivateKeyKey: []byte("y")}}},
	}
	snap, warnings := translate.Translate(in, translate.Options{Now: now})
	want := snapshot(host("", wantRoute(model.PathExact, "/", wantBackend("", "s", "p", "10.0.0.1:80"), "", "odd")))
	assertSnapshot(t, snap, want)
	if len(warnings) < 5 {
		t.Errorf("got %d warnings, want one per odd field: %v", len(warnings), warnings)
	}
}

// TestTranslateConcurrently translates the same inputs from many goroutines
// (run with -race): Translate shares nothing between calls and only reads
// its input.
func TestTranslateConcurrently(t *testing.T) {
	inputs := goldenInputs(t)
	want := make(map[string]string, len(inputs))
	for name, in := range inputs {
		want[name] = encode(translate.Translate(in, translate.Options{Now: now}))
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8*len(inputs))
	for range 8 {
		wg.Go(func() {
			for name, in := range inputs {
				if got := encode(translate.Translate(in, translate.Options{Now: now})); got != want[name] {
					errs <- name
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for name := range errs {
		t.Errorf("%s: a concurrent translation gave a different result", name)
	}
}
