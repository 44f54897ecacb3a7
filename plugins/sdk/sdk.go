// Package sdk is what a native plugin author imports: implement
// plugins.Filter (embed Base for the methods you do not need) and call
// Serve from main. The gateway starts the binary; run by hand, it prints a
// message and exits.
//
//	type authz struct{ sdk.Base }
//
//	func (authz) HandleRequest(ctx context.Context, r *sdk.Request) (*sdk.RequestAction, error) {
//		if r.Header.Get("Authorization") == "" {
//			return sdk.Deny(401, "no credentials"), nil
//		}
//		return nil, nil // continue unchanged
//	}
//
//	func main() { sdk.Serve(authz{}) }
//
// Logs: use Logger(); its records reach the gateway's log with their level
// and attributes, tagged with the plugin's name. Any other line written to
// stdout or stderr is logged at info level.
package sdk

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/sluicegw/sluice/plugins"
)

// The filter model, re-exported so plugins import one package.
type (
	Filter         = plugins.Filter
	Request        = plugins.Request
	RequestAction  = plugins.RequestAction
	Reply          = plugins.Reply
	Response       = plugins.Response
	ResponseAction = plugins.ResponseAction
)

// Serve serves f to the gateway that started this process, until the
// gateway closes it. It does not return when the gateway started it
// (go-plugin exits the process); it exits 1 with a message otherwise.
func Serve(f Filter) {
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig: plugins.Handshake,
		Plugins:         plugins.PluginMap(f),
		GRPCServer:      goplugin.DefaultGRPCServer,
	})
}

// Base implements every Filter method as a no-op: embed it and override
// what you need.
type Base struct{}

// Configure accepts any config.
func (Base) Configure(context.Context, string, []byte) error { return nil }

// HandleRequest continues unchanged.
func (Base) HandleRequest(context.Context, *Request) (*RequestAction, error) { return nil, nil }

// HandleResponse changes nothing.
func (Base) HandleResponse(context.Context, *Response) (*ResponseAction, error) { return nil, nil }

// Deny answers status with a plain-text body.
func Deny(status int, body string) *RequestAction {
	return &RequestAction{Reply: &Reply{
		Status: status,
		Header: http.Header{"Content-Type": {"text/plain; charset=utf-8"}},
		Body:   []byte(body),
	}}
}

// Logger returns a logger whose records the gateway logs as its own,
// with the plugin's name, at the record's level.
func Logger() *slog.Logger { return newLogger(os.Stderr) }

func newLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			// go-plugin reads hclog's JSON keys.
			switch a.Key {
			case slog.TimeKey:
				return slog.String("@timestamp", a.Value.Time().UTC().Format("2006-01-02T15:04:05.000000Z07:00"))
			case slog.LevelKey:
				return slog.String("@level", levelName(a.Value.Any().(slog.Level)))
			case slog.MessageKey:
				return slog.String("@message", a.Value.String())
			}
			return a
		},
	}))
}

func levelName(l slog.Level) string {
	switch {
	case l < slog.LevelInfo:
		return "debug"
	case l < slog.LevelWarn:
		return "info"
	case l < slog.LevelError:
		return "warn"
	}
	return "error"
}

var _ Filter = Base{}
