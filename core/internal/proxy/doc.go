// Package proxy is the request path of the data plane: an http.Handler that
// matches each request against the current route table, picks an endpoint
// from the backend's upstream pool and reverse-proxies the request to it.
//
// The gateway mounts one Handler on its HTTP and HTTPS servers and, for
// every snapshot the control plane builds, syncs the pools, compiles a table
// and swaps it in. A failed compile leaves the previous table serving:
//
//	pools := upstream.NewSet(upstream.Options{})
//	h := proxy.New(proxy.Options{Logger: logger, AccessLog: true})
//	defer h.Close()
//
//	// For each new snapshot (one goroutine):
//	tbl, err := route.Compile(snap, pools.Sync(snap))
//	if err != nil {
//		logger.Error("route table rejected, keeping the old one", "err", err)
//		return
//	}
//	h.Swap(tbl)
//
//	// EndpointSlice fast path: no new table.
//	pools.SetEndpoints(backend.Name, backend.Endpoints)
//
//	srv := &http.Server{Handler: h}
//
// # Notes
//
//   - The request path takes no locks: the table is an atomic.Pointer and
//     the pools pick with atomics.
//   - Answers of the proxy itself are short text/plain bodies: 503 before
//     the first Swap and when a backend has no endpoints, 404 when nothing
//     matches, 502 when the upstream is unreachable, 504 when it is too slow.
//     They name the backend's Service and port, never an internal error.
//   - A route's own policy (annotations, model.Route.Traffic and the
//     routing fields) answers before any filter or upstream sees the
//     request: 403 outside its source ranges, 413 over its body size, 503
//     over its requests in flight per client, then the redirects (301/302
//     or the code asked for, app-root's 302) and CORS preflights (204).
//     Rewrites and the canary choice happen before the filter chain, so the
//     filters see the path and backend that will be used.
package proxy
