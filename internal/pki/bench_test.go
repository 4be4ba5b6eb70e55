package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
)

// BenchmarkMTLSHandshake measures one full TLS 1.3 handshake with a client
// certificate, ECDSA P-256 on both sides, the server verifying the chain
// with VerifyChain as the MQTT TLS listener does. Both ends run in this
// process, so one operation is the CPU of client and server together.
func BenchmarkMTLSHandshake(b *testing.B) {
	db := openDB(b, "d1")
	s, err := Open(context.Background(), db, Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	certFile, keyFile, err := s.ServerCertificate([]string{"localhost"})
	if err != nil {
		b.Fatal(err)
	}
	serverKP, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		b.Fatal(err)
	}
	bundle, err := s.CreateCertificate(context.Background(), "d1", CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	clientKP, err := tls.X509KeyPair(bundle.CertPEM, bundle.KeyPEM)
	if err != nil {
		b.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(s.CA())
	srvCfg := &tls.Config{Certificates: []tls.Certificate{serverKP}, ClientAuth: tls.RequireAnyClientCert,
		SessionTicketsDisabled: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			_, err := s.VerifyChain(raw)
			return err
		}}
	cliCfg := &tls.Config{Certificates: []tls.Certificate{clientKP}, RootCAs: roots, ServerName: "localhost"}
	b.ReportAllocs()
	for b.Loop() {
		c1, c2 := net.Pipe()
		srv, cli := tls.Server(c1, srvCfg), tls.Client(c2, cliCfg)
		done := make(chan error, 1)
		go func() { done <- srv.Handshake() }()
		if err := cli.Handshake(); err != nil {
			b.Fatal(err)
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		c1.Close()
		c2.Close()
	}
}
