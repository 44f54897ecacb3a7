// Package plugins runs native filter plugins: separate processes, spoken to
// over gRPC with hashicorp/go-plugin, that take the same place in a route's
// chain as WASM filters and follow the same request/response model. They are
// for what a sandbox cannot do: call an authorization service, use a native
// library, hold a large cache.
//
// A plugin implements Filter and calls sdk.Serve (package plugins/sdk). The
// gateway runs plugins with a Manager: it launches each one with AutoMTLS,
// health-checks it, restarts it with exponential backoff when it dies, kills
// its process group on shutdown and on removal, and restarts it when its
// binary changes. Manager.Filter gives a route an http middleware, like
// wasm.Filter.Middleware.
//
// Wiring (core/plugins.go does this):
//
//	m := plugins.NewManager(plugins.Options{Logger: log})
//	errs := m.Sync(ctx, specs) // on start and on every config reload
//	f, err := m.Filter("ext-authz", routeConfig, nil)
//	h := f.Middleware(next)
//	...
//	m.Close() // at shutdown, after the listeners drained
package plugins

import (
	"context"
	"fmt"
	"net/http"

	goplugin "github.com/hashicorp/go-plugin"
)

// Filter is what a plugin implements. The gateway calls it from many
// goroutines at once (up to the plugin's max_concurrent), so an
// implementation must be safe for concurrent use. Every call carries a
// context that ends at the plugin's per-call timeout; a call that outlives
// it has failed and its result is ignored. An error fails the request by the
// plugin's failure policy (closed: 5xx; open: as if the filter were absent).
type Filter interface {
	// Configure is called once after every start of the process, before
	// any request, with the plugin's name and its config (JSON; nil when
	// none is set). An error stops this start; the gateway retries with
	// backoff.
	Configure(ctx context.Context, name string, config []byte) error
	// HandleRequest sees a request before the upstream does. A nil action
	// continues unchanged.
	HandleRequest(ctx context.Context, req *Request) (*RequestAction, error)
	// HandleResponse sees the upstream's (or a later filter's) response
	// head before it is sent, only for requests whose RequestAction set
	// WantResponse. A nil action changes nothing.
	HandleResponse(ctx context.Context, resp *Response) (*ResponseAction, error)
}

// Request is what a plugin sees of a request. The body is not sent.
type Request struct {
	Method string
	// URI is the request target as sent: path and query, e.g. /a?b=1.
	URI   string
	Proto string // e.g. HTTP/1.1
	Host  string
	// Header holds the request headers in canonical form, without Host.
	Header     http.Header
	RemoteAddr string // ip:port of the client
	// Config is the route's config for this filter (the annotation entry's
	// config, as JSON), nil when none.
	Config []byte
}

// RequestAction is a plugin's answer to a request: either Reply, or
// changes to the request before it continues.
type RequestAction struct {
	// Reply, when set, answers the request now; the upstream and later
	// filters never see it, and every other field is ignored.
	Reply *Reply

	Method string // non-empty: replaces the method
	URI    string // non-empty: replaces path and query (must start with /)
	// SetHeader replaces the values of each key it holds ("Host" sets the
	// request's host); RemoveHeader deletes keys, after SetHeader.
	SetHeader    http.Header
	RemoveHeader []string
	// WantResponse asks for a HandleResponse call with the response head.
	WantResponse bool
	// State is handed back in Response.State: the same request may reach
	// HandleResponse on another connection, so keep per-request data here.
	State []byte
}

// Reply is an early answer.
type Reply struct {
	Status int // 100..599 excluded 1xx: 200..599
	Header http.Header
	Body   []byte
}

// Response is what a plugin sees of a response: its head.
type Response struct {
	Status int
	Header http.Header
	State  []byte // RequestAction.State
}

// ResponseAction changes the response head: SetHeader replaces the values
// of each key, then RemoveHeader deletes keys.
type ResponseAction struct {
	SetHeader    http.Header
	RemoveHeader []string
}

// FailPolicy says what a request does when its plugin cannot answer: the
// process is down or restarting, busy past the timeout, slow, or failed.
type FailPolicy int

const (
	// FailClosed answers 503 (plugin down or busy) or 500 (call failed or
	// timed out). The default.
	FailClosed FailPolicy = iota
	// FailOpen continues the chain as if the plugin were absent.
	FailOpen
)

// ParseFailPolicy parses "closed" (or "") and "open".
func ParseFailPolicy(s string) (FailPolicy, error) {
	switch s {
	case "", "closed":
		return FailClosed, nil
	case "open":
		return FailOpen, nil
	}
	return 0, fmt.Errorf("fail policy %q: want closed or open", s)
}

func (p FailPolicy) String() string {
	if p == FailOpen {
		return "open"
	}
	return "closed"
}

// Handshake is shared by the gateway and every plugin. A binary started
// without the magic cookie (by hand) prints a message and exits instead of
// waiting for a gateway. ProtocolVersion changes with incompatible changes
// to the gRPC contract.
var Handshake = goplugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "SLUICE_PLUGIN",
	MagicCookieValue: "3b6e1c8f-filter",
}

// PluginName is the name the filter is dispensed under.
const PluginName = "filter"

// PluginMap returns the go-plugin plugin set for impl (nil on the gateway's
// side).
func PluginMap(impl Filter) goplugin.PluginSet {
	return goplugin.PluginSet{PluginName: &GRPCPlugin{Impl: impl}}
}
