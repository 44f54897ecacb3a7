package plugins

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"

	goplugin "github.com/hashicorp/go-plugin"
)

// recordingFilter answers what the test sets and records what it saw.
type recordingFilter struct {
	gotName   string
	gotConfig []byte
	gotReq    *Request
	gotResp   *Response
	reqAct    *RequestAction
	respAct   *ResponseAction
	err       error
}

func (f *recordingFilter) Configure(_ context.Context, name string, config []byte) error {
	f.gotName, f.gotConfig = name, config
	return f.err
}

func (f *recordingFilter) HandleRequest(_ context.Context, r *Request) (*RequestAction, error) {
	f.gotReq = r
	return f.reqAct, f.err
}

func (f *recordingFilter) HandleResponse(_ context.Context, r *Response) (*ResponseAction, error) {
	f.gotResp = r
	return f.respAct, f.err
}

// TestGRPCShim sends every field across the real gRPC shim, in process.
func TestGRPCShim(t *testing.T) {
	impl := &recordingFilter{}
	client, server := goplugin.TestPluginGRPCConn(t, false, map[string]goplugin.Plugin{PluginName: &GRPCPlugin{Impl: impl}})
	defer client.Close()
	defer server.Stop()
	raw, err := client.Dispense(PluginName)
	if err != nil {
		t.Fatal(err)
	}
	f := raw.(Filter)
	ctx := context.Background()

	if err := f.Configure(ctx, "p", []byte(`{"a":1}`)); err != nil || impl.gotName != "p" || string(impl.gotConfig) != `{"a":1}` {
		t.Fatalf("Configure: %v, saw %q %q", err, impl.gotName, impl.gotConfig)
	}

	req := &Request{
		Method: "POST", URI: "/a?b=1", Proto: "HTTP/2.0", Host: "x.test",
		Header:     http.Header{"X-Multi": {"1", "2"}, "Cookie": {"c=1"}},
		RemoteAddr: "192.0.2.1:5", Config: []byte(`{"r":2}`),
	}
	for _, tc := range []struct {
		name string
		act  *RequestAction
		want *RequestAction
	}{
		{"nil continues", nil, &RequestAction{}},
		{"changes", &RequestAction{Method: "PUT", URI: "/b", SetHeader: http.Header{"X-A": {"1", "2"}}, RemoveHeader: []string{"X-B"}, WantResponse: true, State: []byte("s")},
			&RequestAction{Method: "PUT", URI: "/b", SetHeader: http.Header{"X-A": {"1", "2"}}, RemoveHeader: []string{"X-B"}, WantResponse: true, State: []byte("s")}},
		{"reply", &RequestAction{Reply: &Reply{Status: 418, Header: http.Header{"X-T": {"pot"}}, Body: []byte("short and stout")}},
			&RequestAction{Reply: &Reply{Status: 418, Header: http.Header{"X-T": {"pot"}}, Body: []byte("short and stout")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			impl.reqAct, impl.err = tc.act, nil
			got, err := f.HandleRequest(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(impl.gotReq, req) {
				t.Errorf("the plugin saw %+v, want %+v", impl.gotReq, req)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}

	impl.reqAct = &RequestAction{Reply: &Reply{Status: 99}}
	if _, err := f.HandleRequest(ctx, req); err == nil || !strings.Contains(err.Error(), "reply status 99") {
		t.Errorf("a bad reply status: %v", err)
	}
	impl.reqAct, impl.err = nil, errors.New("boom")
	if _, err := f.HandleRequest(ctx, req); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("a plugin error: %v", err)
	}
	impl.err = nil

	impl.respAct = &ResponseAction{SetHeader: http.Header{"X-R": {"1"}}, RemoveHeader: []string{"Server"}}
	got, err := f.HandleResponse(ctx, &Response{Status: 204, Header: http.Header{"Server": {"x"}}, State: []byte("s")})
	if err != nil || !reflect.DeepEqual(got, impl.respAct) {
		t.Fatalf("HandleResponse = %+v, %v", got, err)
	}
	if impl.gotResp.Status != 204 || impl.gotResp.Header.Get("Server") != "x" || string(impl.gotResp.State) != "s" {
		t.Errorf("the plugin saw %+v", impl.gotResp)
	}
	impl.respAct = nil
	if got, err := f.HandleResponse(ctx, &Response{Status: 200}); err != nil || !reflect.DeepEqual(got, &ResponseAction{}) {
		t.Errorf("nil response action = %+v, %v", got, err)
	}
}
