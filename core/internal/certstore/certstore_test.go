package certstore

import (
	"crypto/tls"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/internal/testcert"
)

func cert(t *testing.T, name string, hosts ...string) *model.Certificate {
	t.Helper()
	p, err := testcert.Leaf(nil, hosts, testcert.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &model.Certificate{Source: model.ObjectRef{Kind: "Secret", Namespace: "default", Name: name}, CertPEM: p.CertPEM, KeyPEM: p.KeyPEM}
}

func TestLookup(t *testing.T) {
	a := cert(t, "a", "a.example.com")
	w := cert(t, "w", "*.example.com")
	bad := &model.Certificate{Source: model.ObjectRef{Kind: "Secret", Namespace: "default", Name: "bad"}, CertPEM: []byte("x"), KeyPEM: []byte("y")}
	s, errs := Build([]*model.Certificate{a, w, bad})
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "Secret default/bad") {
		t.Fatalf("want one error naming the bad Secret, got %v", errs)
	}
	for name, want := range map[string]string{
		"a.example.com":   "a.example.com",
		"A.Example.COM.":  "a.example.com",
		"b.example.com":   "*.example.com",
		"x.b.example.com": "",
		"example.com":     "",
		"other.test":      "",
		"":                "",
	} {
		c := s.Lookup(name)
		got := ""
		if c != nil {
			got = c.Leaf.DNSNames[0]
		}
		if got != want {
			t.Errorf("Lookup(%q) = %q, want %q", name, got, want)
		}
	}
	if got, want := s.Names(), []string{"*.example.com", "a.example.com"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}

	if c, err := s.GetCertificate(&tls.ClientHelloInfo{}); err != nil || c.Leaf.DNSNames[0] != "a.example.com" {
		t.Fatalf("no SNI: want the first certificate, got %v %v", c, err)
	}
	if _, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: "nope.test"}); !errors.Is(err, ErrNoCertificate) {
		t.Fatalf("unknown SNI: got %v", err)
	}
	var empty *Store
	if _, err := empty.GetCertificate(&tls.ClientHelloInfo{}); !errors.Is(err, ErrNoCertificate) {
		t.Fatalf("nil store: got %v", err)
	}
}

func TestCovers(t *testing.T) {
	s, _ := Build([]*model.Certificate{cert(t, "a", "a.example.com"), cert(t, "w", "*.w.example.com")})
	for name, want := range map[string]bool{
		"a.example.com":     true,
		"A.example.com.":    true,
		"x.w.example.com":   true,
		"*.w.example.com":   true,
		"*.example.com":     false, // a.example.com's certificate is no wildcard
		"b.example.com":     false,
		"*.x.w.example.com": false,
	} {
		if got := s.Covers(name); got != want {
			t.Errorf("Covers(%q) = %v, want %v", name, got, want)
		}
	}
	var nilStore *Store
	if nilStore.Covers("a.example.com") {
		t.Error("nil store covers a name")
	}
}
