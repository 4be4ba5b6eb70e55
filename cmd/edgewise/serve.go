package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/edgewise-iot/edgewise/internal/app"
	"github.com/edgewise-iot/edgewise/internal/config"
)

func newServeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the server: MQTT broker, registry, time-series store and HTTP API",
		Long: `Run the Edgewise server on one machine, with everything embedded.

Settings come from defaults, then --config FILE (YAML), then EDGEWISE_*
environment variables, then flags. On first start an admin API token is
written to DATA/admin.token (mode 0600) unless EDGEWISE_ADMIN_TOKEN is set.
SIGINT or SIGTERM stops the server cleanly (exit 0).`,
		Args: cobra.NoArgs,
		RunE: runServe,
	}
	f := cmd.Flags()
	f.String("config", "", "YAML configuration file")
	f.String("mqtt-addr", "", "MQTT TCP listen address (default :1883)")
	f.String("http-addr", "", "HTTP API listen address (default :8080)")
	f.Bool("allow-anonymous", false, "accept MQTT clients and Influx API requests without credentials")
	f.String("mqtt-tls-addr", "", "MQTT over TLS listen address, e.g. :8883 (off by default)")
	f.String("mqtt-tls-cert", "", "PEM certificate chain of the TLS listeners")
	f.String("mqtt-tls-key", "", "PEM private key of the TLS listeners")
	f.String("mqtt-tls-client-auth", "", "client certificates on the TLS listener: none, optional or require")
	f.String("mqtt-tls-client-ca", "", "PEM bundle of the CAs that issue client certificates")
	f.String("mqtt-ws-addr", "", "MQTT over WebSocket listen address, e.g. :8083 (path /mqtt; off by default)")
	f.String("log-level", "", "debug, info, warn or error (default info)")
	f.String("log-format", "", "text or json (default text)")
	f.String("fsync", "", "WAL fsync policy: always, interval or never (default always)")
	return cmd
}

func runServe(cmd *cobra.Command, _ []string) error {
	path, _ := cmd.Flags().GetString("config")
	cfg, err := config.Load(path, os.Getenv)
	if err != nil {
		return usageError(err)
	}
	f := cmd.Flags()
	if f.Changed("data") {
		cfg.DataDir, _ = f.GetString("data")
	}
	for flag, dst := range map[string]*string{
		"mqtt-addr": &cfg.MQTT.Addr, "http-addr": &cfg.HTTP.Addr, "log-level": &cfg.Log.Level,
		"log-format": &cfg.Log.Format, "fsync": &cfg.Storage.Fsync,
		"mqtt-tls-addr": &cfg.MQTT.TLS.Addr, "mqtt-tls-cert": &cfg.MQTT.TLS.CertFile,
		"mqtt-tls-key": &cfg.MQTT.TLS.KeyFile, "mqtt-tls-client-auth": &cfg.MQTT.TLS.ClientAuth,
		"mqtt-tls-client-ca": &cfg.MQTT.TLS.ClientCAFile, "mqtt-ws-addr": &cfg.MQTT.WebSocket.Addr,
	} {
		if f.Changed(flag) {
			*dst, _ = f.GetString(flag)
		}
	}
	if f.Changed("allow-anonymous") {
		cfg.MQTT.AllowAnonymous, _ = f.GetBool("allow-anonymous")
		cfg.Influx.AllowAnonymous = cfg.MQTT.AllowAnonymous
	}
	if err := cfg.Validate(); err != nil {
		return usageError(err)
	}
	log := newLogger(cfg.Log)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	if err := a.Run(ctx); err != nil {
		return fmt.Errorf("server stopped with an error: %w", err)
	}
	return nil
}

func newLogger(c config.Log) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(strings.ToUpper(c.Level))) // validated by config
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
