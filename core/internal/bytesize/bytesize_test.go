package bytesize_test

import (
	"testing"

	"github.com/sluicegw/sluice/core/internal/bytesize"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "1000": 1000, "1k": 1 << 10, "8M": 8 << 20, "2g": 2 << 30} {
		if got, err := bytesize.Parse(in); err != nil || got != want {
			t.Errorf("Parse(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "k", "8mb", "-1", "1.5m", " 1m", "8589934592g"} {
		if got, err := bytesize.Parse(in); err == nil {
			t.Errorf("Parse(%q) = %d, want an error", in, got)
		}
	}
}
