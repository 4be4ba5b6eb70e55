package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker"
	"github.com/edgewise-iot/edgewise/internal/config"
	"github.com/edgewise-iot/edgewise/internal/pki"
	"github.com/edgewise-iot/edgewise/internal/policy"
)

// openIdentity opens the PKI (creating the platform CA on first start) and
// the policy store, and registers the CAs of mqtt.tls.client_ca_file.
func (a *App) openIdentity(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	var err error
	if a.pki, err = pki.Open(ctx, a.db, pki.Options{
		Dir: filepath.Join(cfg.DataDir, "pki"), CACertFile: cfg.PKI.CACertFile, CAKeyFile: cfg.PKI.CAKeyFile,
		Validity: time.Duration(cfg.PKI.CertValidity), Logger: log.With("subsystem", "pki"),
	}); err != nil {
		return fmt.Errorf("app: %w", err)
	}
	if a.pol, err = policy.NewStore(ctx, a.db, policy.StoreOptions{Logger: log.With("subsystem", "policy")}); err != nil {
		return fmt.Errorf("app: %w", err)
	}
	if f := cfg.MQTT.TLS.ClientCAFile; f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("app: mqtt.tls.client_ca_file: %w", err)
		}
		n := 0
		for blk, rest := pem.Decode(b); blk != nil; blk, rest = pem.Decode(rest) {
			if blk.Type != "CERTIFICATE" {
				continue
			}
			n++
			_, err := a.pki.RegisterCA(ctx, pem.EncodeToMemory(blk), pki.RegisterCAOptions{AutoRegister: true})
			if err != nil && !errors.Is(err, pki.ErrExists) {
				return fmt.Errorf("app: mqtt.tls.client_ca_file %s: %w", f, err)
			}
		}
		if n == 0 {
			return fmt.Errorf("app: mqtt.tls.client_ca_file %s holds no PEM certificate", f)
		}
	}
	return nil
}

// serverNames are the names of the TLS server certificate issued by the
// platform CA: pki.server_names, or localhost, the loopback addresses, the
// host name and the TLS listener's host.
func serverNames(cfg config.Config) []string {
	if len(cfg.PKI.ServerNames) > 0 {
		return cfg.PKI.ServerNames
	}
	names := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && h != "" && h != "localhost" {
		names = append(names, h)
	}
	if h, _, err := net.SplitHostPort(cfg.MQTT.TLS.Addr); err == nil && h != "" {
		if ip := net.ParseIP(h); ip == nil || !ip.IsUnspecified() && !ip.IsLoopback() {
			names = append(names, h)
		}
	}
	return names
}

// tlsConfig builds the TLS listeners' configuration: the configured server
// certificate or one issued by the platform CA, and client certificates
// verified against the platform CA and the registered CAs as they are at
// each handshake (a CA registered through the API is trusted at once).
func (a *App) tlsConfig(t config.MQTTTLS, minV uint16, log *slog.Logger) (*tls.Config, error) {
	certFile, keyFile := t.CertFile, t.KeyFile
	if certFile == "" {
		var err error
		if certFile, keyFile, err = a.pki.ServerCertificate(serverNames(a.cfg)); err != nil {
			return nil, err
		}
	}
	mode, err := broker.ParseClientAuth(t.ClientAuth)
	if err != nil {
		return nil, err
	}
	return broker.TLSOptions{
		CertFile: certFile, KeyFile: keyFile, MinVersion: minV, ClientAuth: broker.ClientAuthNone, Logger: log,
		Configure: func(c *tls.Config) {
			switch mode {
			case broker.ClientAuthNone:
				return
			case broker.ClientAuthOptional:
				c.ClientAuth = tls.RequestClientCert
			case broker.ClientAuthRequire:
				c.ClientAuth = tls.RequireAnyClientCert
			}
			c.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
				if len(raw) == 0 {
					return nil // optional: the client logs in with a password
				}
				if _, err := a.pki.VerifyChain(raw); err != nil {
					log.Warn("TLS client certificate refused", "err", err)
					return err
				}
				return nil
			}
		},
	}.Config()
}
