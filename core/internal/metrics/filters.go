package metrics

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// FilterCounts are what the chain saw of one filter: calls that passed the
// request on, and answers by status class. Safe for concurrent use.
type filterCounts struct {
	name     string
	next     prometheus.Counter
	answers  [numClasses]prometheus.Counter
	duration prometheus.Observer
}

func (m *Metrics) filterCounts(name string) *filterCounts {
	m.fmu.Lock()
	defer m.fmu.Unlock()
	if fc := m.filters[name]; fc != nil {
		return fc
	}
	fc := &filterCounts{
		name:     name,
		next:     m.filterCalls.WithLabelValues(name, "continue", ""),
		duration: m.filterDuration.WithLabelValues(name),
	}
	for i, c := range CodeClasses {
		fc.answers[i] = m.filterCalls.WithLabelValues(name, "answer", c)
	}
	m.filters[name] = fc
	return fc
}

// handlerCounts returns the continue and answer totals of the filter name
// as counted by its chain wrappers (for the scrape-time collector).
func (m *Metrics) handlerCounts(name string) (next, answers uint64, ok bool) {
	m.fmu.Lock()
	fc := m.filters[name]
	m.fmu.Unlock()
	if fc == nil {
		return 0, 0, false
	}
	next = counterValue(fc.next)
	for _, c := range fc.answers {
		answers += counterValue(c)
	}
	return next, answers, true
}

// Middleware is a filter's place in a chain: it wraps the rest of the
// chain. (wasm.Filter and plugins.RouteFilter have this method.)
type Middleware interface {
	Middleware(next http.Handler) http.Handler
}

// Filter returns mw counted under the filter label name: each call is
// "continue" when the filter passed the request on, else "answer" with
// the status class of its answer, and the time spent in the filter itself
// (not in the rest of the chain) goes to sluice_filter_duration_seconds.
// It costs one small allocation per call.
func (m *Metrics) Filter(name string, mw Middleware) Middleware {
	return &observed{fc: m.filterCounts(name), mw: mw}
}

type observed struct {
	fc *filterCounts
	mw Middleware
}

func (o *observed) Middleware(next http.Handler) http.Handler {
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		call, ok := r.Context().Value(callKey{}).(*filterCall)
		if !ok || call.fc != o.fc {
			next.ServeHTTP(w, r) // cannot happen: the filter kept the context
			return
		}
		call.passed = true
		t := time.Now()
		next.ServeHTTP(w, r)
		call.rest += time.Since(t)
	})
	h := o.mw.Middleware(inner)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		call := &filterCall{Context: r.Context(), ResponseWriter: w, fc: o.fc}
		t := time.Now()
		h.ServeHTTP(call, r.WithContext(call))
		o.fc.duration.Observe((time.Since(t) - call.rest).Seconds())
		if call.passed {
			o.fc.next.Inc()
			return
		}
		o.fc.answers[classIndex(call.status)].Inc()
	})
}

type callKey struct{}

// filterCall is one call of an observed filter: the request's context (so
// the rest of the chain finds it, one allocation for both) and the
// response writer the filter answers through.
type filterCall struct {
	context.Context
	http.ResponseWriter
	fc     *filterCounts
	status int
	passed bool
	rest   time.Duration // in the rest of the chain
}

func (c *filterCall) Value(key any) any {
	if key == (callKey{}) {
		return c
	}
	return c.Context.Value(key)
}

func (c *filterCall) WriteHeader(code int) {
	if c.status == 0 && code >= 200 {
		c.status = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *filterCall) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	return c.ResponseWriter.Write(p)
}

// Flush is here because some code still type-asserts http.Flusher.
func (c *filterCall) Flush() { _ = http.NewResponseController(c.ResponseWriter).Flush() }

func (c *filterCall) Unwrap() http.ResponseWriter { return c.ResponseWriter }
