package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker"
	"github.com/edgewise-iot/edgewise/internal/config"
)

// mqttListeners are the broker's listeners beyond plain TCP: TLS and
// WebSocket (on an address of its own and/or on the HTTP API server).
type mqttListeners struct {
	tcp    *broker.Listener
	tls    *broker.Listener
	ws     *broker.WebSocketListener
	wsLn   net.Listener // the WebSocket listener's own address, if any
	wsHTTP *http.Server
	wsTLS  bool
}

func limits(l config.ListenerLimits) broker.Limits {
	return broker.Limits{MaxConnections: l.MaxConnections, ConnectRate: l.ConnectRate, ConnectBurst: l.ConnectBurst}
}

// listenMQTT binds the MQTT listeners cfg asks for.
func (a *App) listenMQTT(cfg config.MQTT, log *slog.Logger) error {
	m := &a.mqtt
	var err error
	if m.tcp, err = broker.Listen("tcp", cfg.Addr, broker.ListenerOptions{
		Name: "tcp", Limits: limits(cfg.ListenerLimits), Logger: log,
	}); err != nil {
		return fmt.Errorf("app: MQTT listener on %s: %w", cfg.Addr, err)
	}
	a.mqttLn = m.tcp
	var tlsCfg *tls.Config
	if cfg.TLS.Addr != "" || cfg.WebSocket.TLS {
		minV, err := broker.ParseTLSVersion(cfg.TLS.MinVersion)
		if err != nil {
			return fmt.Errorf("app: mqtt.tls: %w", err)
		}
		if tlsCfg, err = a.tlsConfig(cfg.TLS, minV, log); err != nil {
			return fmt.Errorf("app: mqtt.tls: %w", err)
		}
	}
	if cfg.TLS.Addr != "" {
		if m.tls, err = broker.Listen("tcp", cfg.TLS.Addr, broker.ListenerOptions{
			Name: "tls", Limits: limits(cfg.TLS.ListenerLimits), TLS: tlsCfg, Logger: log,
		}); err != nil {
			return fmt.Errorf("app: MQTT TLS listener on %s: %w", cfg.TLS.Addr, err)
		}
	}
	ws := cfg.WebSocket
	if ws.Addr == "" && !ws.OnHTTP {
		return nil
	}
	var addr net.Addr
	if ws.Addr != "" {
		if m.wsLn, err = net.Listen("tcp", ws.Addr); err != nil {
			return fmt.Errorf("app: MQTT WebSocket listener on %s: %w", ws.Addr, err)
		}
		addr = m.wsLn.Addr()
		m.wsTLS = ws.TLS
		if ws.TLS {
			m.wsLn = tls.NewListener(m.wsLn, tlsCfg)
		}
	}
	m.ws = broker.NewWebSocketListener(addr, broker.WebSocketOptions{Name: "ws", Limits: limits(ws.ListenerLimits), Logger: log})
	if m.wsLn != nil {
		mux := http.NewServeMux()
		mux.Handle(ws.Path, m.ws)
		m.wsHTTP = &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		}
	}
	return nil
}

// mountWebSocket adds the WebSocket endpoint to the API handler when
// mqtt.websocket.on_http is set.
func (a *App) mountWebSocket(cfg config.MQTTWebSocket, api http.Handler) http.Handler {
	if !cfg.OnHTTP || a.mqtt.ws == nil {
		return api
	}
	mux := http.NewServeMux()
	mux.Handle(cfg.Path, a.mqtt.ws)
	mux.Handle("/", api)
	return mux
}

// serveMQTT starts serving the TLS and WebSocket listeners and $SYS; errors
// go to errc.
func (a *App) serveMQTT(ctx context.Context, errc chan<- error) {
	m := &a.mqtt
	if m.tls != nil {
		go func() {
			if err := a.broker.Serve(m.tls); err != nil {
				errc <- fmt.Errorf("app: MQTT TLS: %w", err)
			}
		}()
		a.log.Info("edgewise serving MQTT over TLS", "addr", m.tls.Addr().String(),
			"client_auth", a.cfg.MQTT.TLS.ClientAuth)
	}
	if m.ws != nil {
		go func() {
			if err := a.broker.Serve(m.ws); err != nil {
				errc <- fmt.Errorf("app: MQTT WebSocket: %w", err)
			}
		}()
	}
	if m.wsHTTP != nil {
		go func() {
			if err := m.wsHTTP.Serve(m.wsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("app: MQTT WebSocket HTTP: %w", err)
			}
		}()
		scheme := "ws"
		if m.wsTLS {
			scheme = "wss"
		}
		a.log.Info("edgewise serving MQTT over WebSocket", "url", scheme+"://"+m.wsLn.Addr().String()+a.cfg.MQTT.WebSocket.Path)
	}
	if m.ws != nil && a.cfg.MQTT.WebSocket.OnHTTP {
		a.log.Info("edgewise serving MQTT over WebSocket on the HTTP API", "url", "ws://"+a.HTTPAddr().String()+a.cfg.MQTT.WebSocket.Path)
	}
	go func() {
		if err := a.broker.RunSys(ctx, broker.SysOptions{
			Interval: time.Duration(a.cfg.MQTT.SysInterval), Listeners: a.ListenerStats,
		}); err != nil {
			a.log.Warn("$SYS statistics stopped", "err", err)
		}
	}()
}

// closeMQTT stops the WebSocket HTTP server (upgraded connections belong
// to the broker and are closed by it).
func (a *App) closeMQTT(ctx context.Context) error {
	m := &a.mqtt
	var err error
	if m.wsHTTP != nil {
		if e := m.wsHTTP.Shutdown(ctx); e != nil {
			err = fmt.Errorf("app: MQTT WebSocket HTTP shutdown: %w", e)
		}
	}
	if m.wsLn != nil {
		m.wsLn.Close()
	}
	return err
}

// closeListeners closes listeners bound but never served (the broker
// closes those it serves).
func (m *mqttListeners) closeListeners() {
	if m.tls != nil {
		m.tls.Close()
	}
	if m.ws != nil {
		m.ws.Close()
	}
}

// TLSAddr is the bound MQTT over TLS address, or nil.
func (a *App) TLSAddr() net.Addr {
	if a.mqtt.tls == nil {
		return nil
	}
	return a.mqtt.tls.Addr()
}

// WebSocketAddr is the bound address of the MQTT WebSocket listener of its
// own, or nil.
func (a *App) WebSocketAddr() net.Addr {
	if a.mqtt.wsLn == nil {
		return nil
	}
	return a.mqtt.wsLn.Addr()
}

// ListenerStats returns the counters of every MQTT listener.
func (a *App) ListenerStats() []broker.ListenerStats {
	m := &a.mqtt
	var out []broker.ListenerStats
	if m.tcp != nil {
		out = append(out, m.tcp.Stats())
	}
	if m.tls != nil {
		out = append(out, m.tls.Stats())
	}
	if m.ws != nil {
		out = append(out, m.ws.Stats())
	}
	return out
}
