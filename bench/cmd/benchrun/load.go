package main

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// goLoad is a closed-loop load generator like wrk (conns connections,
// each sending its next request when the previous answer is read), for
// what wrk cannot do: present a client certificate.
type goLoad struct {
	URL      string
	Host     string
	Conns    int
	Duration time.Duration
	TLS      *tls.Config
}

// run drives the load and returns the same figures as a wrk run.
func (g goLoad) run(ctx context.Context) wrkResult {
	ctx, cancel := context.WithTimeout(ctx, g.Duration)
	defer cancel()
	lat := make([][]time.Duration, g.Conns)
	var status, sockErrs int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for i := range g.Conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := &http.Transport{TLSClientConfig: g.TLS, MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1, ForceAttemptHTTP2: false}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr}
			var st, se int64
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, "GET", g.URL, nil)
				req.Host = g.Host
				t0 := time.Now()
				resp, err := c.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						se++
					}
					continue
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil {
					if ctx.Err() == nil {
						se++
					}
					continue
				}
				lat[i] = append(lat[i], time.Since(t0))
				if resp.StatusCode > 399 {
					st++
				}
			}
			mu.Lock()
			status += st
			sockErrs += se
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	r := wrkResult{Requests: int64(len(all)), Duration: elapsed, Status: status, SocketErrs: sockErrs}
	r.RPS = float64(r.Requests) / elapsed.Seconds()
	if len(all) > 0 {
		pct := func(p float64) time.Duration { return all[min(len(all)-1, int(p/100*float64(len(all))))] }
		r.P50, r.P99, r.P999, r.Max = pct(50), pct(99), pct(99.9), all[len(all)-1]
	}
	return r
}
