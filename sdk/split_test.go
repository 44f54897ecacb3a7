//go:build !wasip1

package sdk

import (
	"bytes"
	"reflect"
	"testing"
)

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		count int
		b     string
		want  []string
	}{
		{0, "", nil},
		{1, "a\x00", []string{"a"}},
		{2, "a\x00bc\x00", []string{"a", "bc"}},
		{1, "\x00", []string{""}},
		{3, "a\x00", []string{"a"}}, // a count larger than the data
		{1 << 30, "x", []string{}},  // no NUL: nothing complete
	} {
		if got := split(tc.count, []byte(tc.b)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("split(%d, %q) = %q, want %q", tc.count, tc.b, got, tc.want)
		}
	}
}

// FuzzSplit: any count_len result a host returns is split without a panic
// or an allocation sized by the count, into one string per NUL, which
// join back to the data.
func FuzzSplit(f *testing.F) {
	f.Add(2, []byte("a\x00bc\x00"))
	f.Add(1<<31-1, []byte("x\x00"))
	f.Fuzz(func(t *testing.T, count int, b []byte) {
		if count < 0 {
			return // count is an unsigned 32-bit field
		}
		got := split(count, b)
		if count == 0 {
			if got != nil {
				t.Fatalf("count 0: %q", got)
			}
			return
		}
		if n := bytes.Count(b, []byte{0}); len(got) != n {
			t.Fatalf("%d strings from %d NULs", len(got), n)
		}
		var joined []byte
		for _, s := range got {
			joined = append(append(joined, s...), 0)
		}
		if !bytes.HasPrefix(b, joined) {
			t.Fatalf("strings %q are not the data %q", got, b)
		}
	})
}

// TestNewStringKeepsValues: strings carved from the arena keep their
// values across chunk changes and later writes to the source buffer.
func TestNewStringKeepsValues(t *testing.T) {
	buf := make([]byte, 300)
	var got, want []string
	for i := range 2000 {
		n := i % 300 // 0, short, and over arenaMax
		for j := range n {
			buf[j] = byte('a' + (i+j)%26)
		}
		got = append(got, newString(buf[:n]))
		want = append(want, string(buf[:n]))
		clear(buf)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("string %d changed: %q, want %q", i, got[i], want[i])
		}
	}
}

// peerBytes encodes fields as sluice.tls_peer does.
func peerBytes(fields ...[]string) []byte {
	var b []byte
	for _, vs := range fields {
		b = append(b, byte(len(vs)), 0, 0, 0)
		for _, v := range vs {
			b = append(append(b, v...), 0)
		}
	}
	return b
}

func TestPeerFields(t *testing.T) {
	b := peerBytes([]string{"CN=web"}, []string{"CN=ca"}, nil, []string{"https://x", "spiffe://a/b"}, []string{"spiffe://a/b"}, []string{"ab"})
	var p Peer
	p.Subject, b = peerOne(b)
	p.Issuer, b = peerOne(b)
	p.DNSNames, b = peerList(b)
	p.URIs, b = peerList(b)
	p.SPIFFEID, b = peerOne(b)
	p.SHA256, b = peerOne(b)
	want := Peer{Subject: "CN=web", Issuer: "CN=ca", URIs: []string{"https://x", "spiffe://a/b"}, SPIFFEID: "spiffe://a/b", SHA256: "ab"}
	if !reflect.DeepEqual(p, want) || len(b) != 0 {
		t.Fatalf("decoded %+v (rest %q), want %+v", p, b, want)
	}
	// Truncated input ends the fields, without a panic.
	if vs, rest := peerList([]byte{5, 0, 0, 0, 'a', 0, 'b'}); !reflect.DeepEqual(vs, []string{"a"}) || rest != nil {
		t.Fatalf("truncated list: %q, rest %q", vs, rest)
	}
	if v, rest := peerOne([]byte{2, 0, 0, 0, 'a', 0, 'b'}); v != "a" || rest != nil {
		t.Fatalf("truncated one: %q, rest %q", v, rest)
	}
	if v, rest := peerOne([]byte{1, 0}); v != "" || rest != nil {
		t.Fatalf("short count: %q, rest %q", v, rest)
	}
}

// FuzzPeerFields: any tls_peer result decodes without a panic or an
// allocation sized by a count.
func FuzzPeerFields(f *testing.F) {
	f.Add(peerBytes([]string{"CN=web"}, nil, []string{"a", "b"}))
	f.Add([]byte{0xff, 0xff, 0xff, 0x7f, 'x', 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		for range 6 {
			var vs []string
			n := len(b)
			vs, b = peerList(b)
			if cap(vs) > n {
				t.Fatalf("%d strings allocated for %d bytes", cap(vs), n)
			}
		}
		_, _ = peerOne(b)
	})
}
