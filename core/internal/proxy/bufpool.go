package proxy

import (
	"net/http/httputil"
	"sync"
)

// bufPool recycles the 32 KiB buffers ReverseProxy copies bodies with;
// without it every request allocates one.
type bufPool struct{ p sync.Pool }

var _ httputil.BufferPool = (*bufPool)(nil)

func newBufPool() *bufPool {
	return &bufPool{p: sync.Pool{New: func() any {
		b := make([]byte, 32<<10)
		return &b
	}}}
}

func (b *bufPool) Get() []byte { return *b.p.Get().(*[]byte) }

func (b *bufPool) Put(buf []byte) {
	if cap(buf) != 32<<10 {
		return
	}
	buf = buf[:cap(buf)]
	b.p.Put(&buf)
}
