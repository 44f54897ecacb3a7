// Command testplugin is the plugin the tests of plugins/ and the gateway's
// end-to-end tests run. Its plugin config (JSON) picks a mode; request
// headers pick a behaviour:
//
//	x-plugin-deny: STATUS   answer STATUS with body "denied by NAME"
//	x-plugin-hang: 1        block until the call's deadline
//	x-plugin-exit: 1        exit the process (a crash)
//	x-plugin-error: 1       return an error
//	x-plugin-rewrite: URI   rewrite the request target
//
// Otherwise it sets X-Plugin-Seen: NAME, removes X-Remove-Me, and asks for
// the response, on which it sets X-Plugin-Response: NAME. The mode "noop"
// continues every request unchanged (benchmarks); "child" starts a
// long-lived child process (process-tree tests); "badconfig" refuses
// Configure.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"

	"github.com/sluicegw/sluice/plugins/sdk"
)

type config struct {
	Mode string `json:"mode"`
}

type filter struct {
	sdk.Base
	name string
	mode string
}

func (f *filter) Configure(_ context.Context, name string, raw []byte) error {
	var c config
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &c); err != nil {
			return fmt.Errorf("config: %w", err)
		}
	}
	f.name, f.mode = name, c.Mode
	switch c.Mode {
	case "badconfig":
		return errors.New("refusing this config on purpose")
	case "child":
		cmd := exec.Command("sleep", "3600")
		if err := cmd.Start(); err != nil {
			return err
		}
		sdk.Logger().Info("child started", "child_pid", cmd.Process.Pid)
	}
	sdk.Logger().Info("configured", "mode", c.Mode, "pid", os.Getpid())
	return nil
}

func (f *filter) HandleRequest(ctx context.Context, r *sdk.Request) (*sdk.RequestAction, error) {
	if f.mode == "noop" {
		return nil, nil
	}
	h := r.Header
	if s := h.Get("X-Plugin-Deny"); s != "" {
		code, err := strconv.Atoi(s)
		if err != nil {
			return nil, fmt.Errorf("x-plugin-deny: %w", err)
		}
		a := sdk.Deny(code, "denied by "+f.name+"\n")
		a.Reply.Header.Set("X-Denied-By", f.name)
		return a, nil
	}
	if h.Get("X-Plugin-Hang") != "" {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if h.Get("X-Plugin-Exit") != "" {
		os.Exit(3)
	}
	if h.Get("X-Plugin-Error") != "" {
		return nil, errors.New("failing on purpose")
	}
	a := &sdk.RequestAction{
		SetHeader:    http.Header{"X-Plugin-Seen": {f.name}},
		RemoveHeader: []string{"X-Remove-Me"},
		WantResponse: true,
		State:        []byte(f.name),
	}
	if len(r.Config) > 0 {
		a.SetHeader.Set("X-Route-Config", string(r.Config))
	}
	if u := h.Get("X-Plugin-Rewrite"); u != "" {
		a.URI = u
	}
	return a, nil
}

func (f *filter) HandleResponse(_ context.Context, r *sdk.Response) (*sdk.ResponseAction, error) {
	return &sdk.ResponseAction{
		SetHeader:    http.Header{"X-Plugin-Response": {string(r.State)}, "X-Plugin-Status": {strconv.Itoa(r.Status)}},
		RemoveHeader: []string{"X-Upstream-Secret"},
	}, nil
}

func main() { sdk.Serve(&filter{}) }
