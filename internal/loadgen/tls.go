package loadgen

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
)

// TLSOptions make the load generator speak MQTT over TLS.
type TLSOptions struct {
	CAFile     string // PEM CA bundle that verifies the server (empty: system roots)
	CertFile   string // client certificate (optional, with KeyFile)
	KeyFile    string
	ServerName string // default: the host of the target address
	Insecure   bool   // skip server verification (never in production)
}

// TLSDial returns a dial function for BenchOptions.Dial that completes a
// full TLS handshake on every connection: no session cache, so no
// resumption, which is what a fleet of devices reconnecting at once costs.
func TLSDial(o TLSOptions) (func(ctx context.Context, network, addr string) (net.Conn, error), error) {
	cfg := &tls.Config{ServerName: o.ServerName, InsecureSkipVerify: o.Insecure, MinVersion: tls.VersionTLS12}
	if o.CAFile != "" {
		b, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("loadgen: TLS CA file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("loadgen: TLS CA file %s holds no PEM certificate", o.CAFile)
		}
	}
	if o.CertFile != "" || o.KeyFile != "" {
		kp, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("loadgen: TLS client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{kp}
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c := cfg
		if c.ServerName == "" {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			c = cfg.Clone()
			c.ServerName = host
		}
		d := tls.Dialer{Config: c}
		return d.DialContext(ctx, network, addr)
	}, nil
}
