package agent

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// clientCert serves the agent's client certificate to each TLS handshake
// of the uplink and reloads the PEM files when they change, so a renewed
// certificate (`edgewise certs create THING --out DIR` over the old files,
// e.g. after a revocation) is used from the next connection attempt on
// without restarting the agent. A pair that does not load (a half-written
// rotation, a key that does not match) keeps the previous certificate in
// use and is tried again at the next handshake.
type clientCert struct {
	certFile, keyFile string
	log               *slog.Logger

	mu      sync.Mutex
	stamp   [2]fileStamp
	current *tls.Certificate
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.ModTime(), fi.Size()}, nil
}

// newClientCert loads the pair once; an error here is a configuration
// error.
func newClientCert(certFile, keyFile string, log *slog.Logger) (*clientCert, error) {
	c := &clientCert{certFile: certFile, keyFile: keyFile, log: log}
	if err := c.reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// reload loads the pair if either file changed since the last load.
func (c *clientCert) reload() error {
	var st [2]fileStamp
	for i, f := range []string{c.certFile, c.keyFile} {
		s, err := stampOf(f)
		if err != nil {
			return fmt.Errorf("agent: uplink client certificate: %w", err)
		}
		st[i] = s
	}
	if c.current != nil && st == c.stamp {
		return nil
	}
	crt, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("agent: uplink client certificate: %w", err)
	}
	if c.current != nil {
		c.log.Info("agent: uplink client certificate reloaded", "cert_file", c.certFile)
	}
	c.current, c.stamp = &crt, st
	return nil
}

// get is tls.Config.GetClientCertificate.
func (c *clientCert) get(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.reload(); err != nil {
		c.log.Warn("agent: keeping the previous uplink client certificate", "err", err)
	}
	return c.current, nil
}
