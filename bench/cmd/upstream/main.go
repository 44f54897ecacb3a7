// Command upstream is the one upstream every benchmark case talks to: it
// answers every request with the same 13-byte body, over plain HTTP and,
// with -tls-addr, over TLS. It counts the requests it serves per second of
// wall-clock time; GET /__counts returns those counts as JSON
// ({"unix second": requests}) and clears them, and is not counted itself.
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Body is the answer to every request.
const Body = "hello, bench\n"

// counter counts requests per unix second. Safe for concurrent use.
type counter struct {
	mu  sync.Mutex
	sec int64
	n   int64
	old map[int64]int64
}

func (c *counter) add(now time.Time) {
	s := now.Unix()
	c.mu.Lock()
	if s != c.sec {
		if c.n > 0 {
			c.old[c.sec] += c.n
		}
		c.sec, c.n = s, 0
	}
	c.n++
	c.mu.Unlock()
}

// take returns the counts so far and clears them.
func (c *counter) take() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.old)+1)
	for s, n := range c.old {
		out[strconv.FormatInt(s, 10)] = n
	}
	if c.n > 0 {
		out[strconv.FormatInt(c.sec, 10)] += c.n
	}
	c.old, c.sec, c.n = map[int64]int64{}, 0, 0
	return out
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "plain HTTP listen address (loopback)")
	tlsAddr := flag.String("tls-addr", "", "TLS listen address (empty: none)")
	cert := flag.String("cert", "", "certificate (PEM) for -tls-addr")
	key := flag.String("key", "", "private key (PEM) for -tls-addr")
	flag.Parse()

	c := &counter{old: map[int64]int64{}}
	body := []byte(Body)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /__counts", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(c.take())
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c.add(time.Now())
		h := w.Header()
		h["Content-Type"] = []string{"text/plain"}
		h["Content-Length"] = []string{"13"}
		w.Write(body)
	})
	errc := make(chan error, 2)
	go func() { errc <- http.ListenAndServe(*addr, mux) }()
	if *tlsAddr != "" {
		go func() { errc <- http.ListenAndServeTLS(*tlsAddr, *cert, *key, mux) }()
	}
	log.Fatal(<-errc)
}
