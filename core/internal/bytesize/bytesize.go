// Package bytesize reads sizes in nginx syntax ("8m", "512k", "1000"), as
// ingress-nginx's proxy-body-size and the config file's
// proxy.max_body_size write them.
package bytesize

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Parse reads a number of bytes with an optional unit k, m or g (either
// case, powers of 1024). The result is never negative.
func Parse(v string) (int64, error) {
	num, shift := v, 0
	if v != "" {
		switch v[len(v)-1] {
		case 'k', 'K':
			num, shift = v[:len(v)-1], 10
		case 'm', 'M':
			num, shift = v[:len(v)-1], 20
		case 'g', 'G':
			num, shift = v[:len(v)-1], 30
		}
	}
	if num == "" || strings.TrimLeft(num, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a size (bytes, or a number with k, m or g: 8m, 512k, 0 for no limit)", v)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("%q is too large a size", v)
	}
	return n << shift, nil
}
