package tlsmgr

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"testing"
	"time"
)

// dial runs one TLS handshake against srv over loopback TCP and returns
// the client's view of the connection. The error is the client's, or the
// server's refusal as the client sees it (the server reads nothing before
// it has verified the client, then writes "ok").
func dial(t testing.TB, srv *tls.Config, cli *tls.Config) (tls.ConnectionState, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	serverErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			serverErr <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		s := tls.Server(c, srv)
		if err := s.Handshake(); err != nil {
			serverErr <- err
			return
		}
		_, err = s.Write([]byte("ok"))
		serverErr <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	tc := tls.Client(c, cli)
	if err := tc.Handshake(); err != nil {
		<-serverErr
		return tls.ConnectionState{}, err
	}
	buf := make([]byte, 2)
	if _, err := io.ReadFull(tc, buf); err != nil {
		if serr := <-serverErr; serr != nil {
			return tls.ConnectionState{}, serr
		}
		return tls.ConnectionState{}, err
	}
	return tc.ConnectionState(), <-serverErr
}

func poolOf(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}
