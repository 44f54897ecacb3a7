// Command echo is the tiny backend of the standalone example: it answers
// every request with its own name and what it received, so you can see
// which backend a route reached and what the gateway forwarded.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"sort"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9001", "listen address")
	name := flag.String("name", "echo", "name to answer with")
	flag.Parse()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Backend", *name)
		fmt.Fprintf(w, "backend: %s\n%s %s %s\nhost: %s\n", *name, r.Method, r.RequestURI, r.Proto, r.Host)
		keys := make([]string, 0, len(r.Header))
		for k := range r.Header {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			for _, v := range r.Header[k] {
				fmt.Fprintf(w, "%s: %s\n", k, v)
			}
		}
	})
	srv := &http.Server{Addr: *addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	log.Printf("echo %s listening on %s", *name, *addr)
	log.Fatal(srv.ListenAndServe())
}
