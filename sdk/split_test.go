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
