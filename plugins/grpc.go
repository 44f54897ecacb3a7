package plugins

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/sluicegw/sluice/plugins/internal/pb"
)

// GRPCPlugin is the go-plugin glue: on the plugin's side it serves Impl,
// on the gateway's side it returns a Filter that calls the plugin. Callers
// never see gRPC.
type GRPCPlugin struct {
	// Plugin is nil: only the gRPC protocol is offered (AllowedProtocols).
	goplugin.Plugin
	Impl Filter // plugin side only
}

// GRPCServer registers Impl.
func (p *GRPCPlugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return errors.New("plugins: GRPCPlugin.Impl is nil")
	}
	pb.RegisterFilterServer(s, &grpcServer{impl: p.Impl})
	return nil
}

// GRPCClient returns a Filter that calls the plugin over c.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *goplugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &grpcClient{c: pb.NewFilterClient(c)}, nil
}

// grpcClient is the gateway's view of a plugin.
type grpcClient struct{ c pb.FilterClient }

func (g *grpcClient) Configure(ctx context.Context, name string, config []byte) error {
	_, err := g.c.Configure(ctx, &pb.ConfigureRequest{Name: name, Config: config})
	return err
}

func (g *grpcClient) HandleRequest(ctx context.Context, req *Request) (*RequestAction, error) {
	out, err := g.c.HandleRequest(ctx, &pb.Request{
		Method:      req.Method,
		Uri:         req.URI,
		Proto:       req.Proto,
		Host:        req.Host,
		Headers:     toPB(req.Header),
		RemoteAddr:  req.RemoteAddr,
		RouteConfig: req.Config,
	})
	if err != nil {
		return nil, err
	}
	a := &RequestAction{
		Method:       out.Method,
		URI:          out.Uri,
		SetHeader:    fromPB(out.SetHeaders),
		RemoveHeader: out.RemoveHeaders,
		WantResponse: out.WantResponse,
		State:        out.State,
	}
	if r := out.Reply; r != nil {
		a.Reply = &Reply{Status: int(r.Status), Header: fromPB(r.Headers), Body: r.Body}
	}
	return a, nil
}

func (g *grpcClient) HandleResponse(ctx context.Context, resp *Response) (*ResponseAction, error) {
	out, err := g.c.HandleResponse(ctx, &pb.Response{Status: int32(resp.Status), Headers: toPB(resp.Header), State: resp.State})
	if err != nil {
		return nil, err
	}
	return &ResponseAction{SetHeader: fromPB(out.SetHeaders), RemoveHeader: out.RemoveHeaders}, nil
}

// grpcServer is the plugin's side: it serves impl.
type grpcServer struct {
	pb.UnimplementedFilterServer
	impl Filter
}

func (s *grpcServer) Configure(ctx context.Context, in *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	if err := s.impl.Configure(ctx, in.Name, in.Config); err != nil {
		return nil, err
	}
	return &pb.ConfigureResponse{}, nil
}

func (s *grpcServer) HandleRequest(ctx context.Context, in *pb.Request) (*pb.RequestAction, error) {
	a, err := s.impl.HandleRequest(ctx, &Request{
		Method:     in.Method,
		URI:        in.Uri,
		Proto:      in.Proto,
		Host:       in.Host,
		Header:     fromPB(in.Headers),
		RemoteAddr: in.RemoteAddr,
		Config:     in.RouteConfig,
	})
	if err != nil {
		return nil, err
	}
	if a == nil {
		return &pb.RequestAction{}, nil
	}
	out := &pb.RequestAction{
		Method:        a.Method,
		Uri:           a.URI,
		SetHeaders:    toPB(a.SetHeader),
		RemoveHeaders: a.RemoveHeader,
		WantResponse:  a.WantResponse,
		State:         a.State,
	}
	if r := a.Reply; r != nil {
		if r.Status < 200 || r.Status > 599 {
			return nil, fmt.Errorf("reply status %d is outside 200..599", r.Status)
		}
		out.Reply = &pb.Reply{Status: int32(r.Status), Headers: toPB(r.Header), Body: r.Body}
	}
	return out, nil
}

func (s *grpcServer) HandleResponse(ctx context.Context, in *pb.Response) (*pb.ResponseAction, error) {
	a, err := s.impl.HandleResponse(ctx, &Response{Status: int(in.Status), Header: fromPB(in.Headers), State: in.State})
	if err != nil {
		return nil, err
	}
	if a == nil {
		return &pb.ResponseAction{}, nil
	}
	return &pb.ResponseAction{SetHeaders: toPB(a.SetHeader), RemoveHeaders: a.RemoveHeader}, nil
}

func toPB(h http.Header) []*pb.Header {
	if len(h) == 0 {
		return nil
	}
	out := make([]*pb.Header, 0, len(h))
	for k, vs := range h {
		out = append(out, &pb.Header{Name: k, Values: vs})
	}
	return out
}

func fromPB(hs []*pb.Header) http.Header {
	if len(hs) == 0 {
		return nil
	}
	out := make(http.Header, len(hs))
	for _, h := range hs {
		k := http.CanonicalHeaderKey(h.Name)
		out[k] = append(out[k], h.Values...)
	}
	return out
}

// Interface guards.
var (
	_ goplugin.GRPCPlugin = (*GRPCPlugin)(nil)
	_ Filter              = (*grpcClient)(nil)
	_ pb.FilterServer     = (*grpcServer)(nil)
)
