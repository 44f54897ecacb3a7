package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/sluicegw/sluice/plugins/sdk"
)

// config is plugins.ext-authz.config in the gateway's config file.
type config struct {
	// URL of the authorization service (required). Every request is asked
	// about with a GET to it.
	URL string `json:"url"`
	// Timeout bounds one check; keep it below the plugin's timeout.
	// Default 500ms.
	Timeout string `json:"timeout"`
	// Headers of the request sent along to the service. Default
	// Authorization and Cookie.
	Headers []string `json:"headers"`
	// UpstreamHeaders are copied from an allowing answer into the request
	// (e.g. X-User), replacing what the client sent.
	UpstreamHeaders []string `json:"upstream_headers"`
	// MaxBody bounds the denial body passed to the client. Default 4096.
	MaxBody int64 `json:"max_body"`
}

// authz asks an HTTP authorization service about every request:
//
//   - a 2xx answer allows it; the configured upstream headers are copied
//     from the answer into the request;
//   - any other answer denies it: the client gets the service's status,
//     body and WWW-Authenticate / Content-Type / Location headers;
//   - no answer (unreachable, timeout) is an error: the gateway applies the
//     plugin's failure policy.
//
// The service sees the original method, URI and host as X-Forwarded-Method,
// X-Forwarded-Uri and X-Forwarded-Host, the client as X-Forwarded-For,
// and the configured headers as they came.
type authz struct {
	sdk.Base
	cfg     config
	timeout time.Duration
	client  *http.Client
}

func (a *authz) Configure(_ context.Context, name string, raw []byte) error {
	var c config
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &c); err != nil {
			return fmt.Errorf("plugin %s: config: %w", name, err)
		}
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("plugin %s: config url %q: want an http:// or https:// URL", name, c.URL)
	}
	a.timeout = 500 * time.Millisecond
	if c.Timeout != "" {
		if a.timeout, err = time.ParseDuration(c.Timeout); err != nil || a.timeout <= 0 {
			return fmt.Errorf("plugin %s: config timeout %q: want a positive duration", name, c.Timeout)
		}
	}
	if c.Headers == nil {
		c.Headers = []string{"Authorization", "Cookie"}
	}
	if c.MaxBody <= 0 {
		c.MaxBody = 4096
	}
	a.cfg = c
	a.client = &http.Client{
		// Redirects are answers, not something to follow.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	sdk.Logger().Info("ext-authz configured", "url", c.URL, "timeout", a.timeout.String())
	return nil
}

func (a *authz) HandleRequest(ctx context.Context, r *sdk.Request) (*sdk.RequestAction, error) {
	if a.client == nil {
		return nil, errors.New("not configured")
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.cfg.URL, nil)
	if err != nil {
		return nil, err
	}
	for _, h := range a.cfg.Headers {
		for _, v := range r.Header.Values(h) {
			req.Header.Add(h, v)
		}
	}
	req.Header.Set("X-Forwarded-Method", r.Method)
	req.Header.Set("X-Forwarded-Uri", r.URI)
	req.Header.Set("X-Forwarded-Host", r.Host)
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		req.Header.Set("X-Forwarded-For", host)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("authorization service %s: %w", a.cfg.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, a.cfg.MaxBody))
		act := &sdk.RequestAction{}
		for _, h := range a.cfg.UpstreamHeaders {
			if vs := resp.Header.Values(h); len(vs) > 0 {
				if act.SetHeader == nil {
					act.SetHeader = http.Header{}
				}
				act.SetHeader[http.CanonicalHeaderKey(h)] = vs
			} else {
				// Never let a client forge what the service vouches for.
				act.RemoveHeader = append(act.RemoveHeader, h)
			}
		}
		return act, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, a.cfg.MaxBody))
	if err != nil {
		return nil, fmt.Errorf("authorization service %s: read the denial: %w", a.cfg.URL, err)
	}
	status := resp.StatusCode
	if status < 200 || status > 599 {
		status = http.StatusForbidden
	}
	reply := &sdk.Reply{Status: status, Header: http.Header{}, Body: bytes.Clone(body)}
	for _, h := range []string{"Www-Authenticate", "Content-Type", "Location"} {
		if vs := resp.Header.Values(h); len(vs) > 0 {
			reply.Header[h] = vs
		}
	}
	return &sdk.RequestAction{Reply: reply}, nil
}
