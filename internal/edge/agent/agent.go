// Package agent is the composition root of `edgewise agent`: the local MQTT
// broker for site devices (internal/broker, small defaults, static local
// users), the rules engine with local rules (internal/rules, the same
// engine as the server), the uplink bridge with its spool
// (internal/edge/bridge, internal/edge/spool), the rule set managed from
// the cloud, and a small HTTP listener with /healthz and /api/v1/stats.
//
// Data directory layout: LOCK, agent.db (local rules), broker/ (local
// persistent sessions), spool/ (outbound queue), ruleset.json (the central
// rule set last applied).
//
// Message flow: a local device's PUBLISH is routed to local subscribers,
// appended to the spool when a forward route matches (before the local
// PUBACK) and given to the local rules. A rule's republish goes to local
// subscribers (actuators) and, when a forward route matches its topic, to
// the spool. Webhook actions call out directly.
package agent

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker"
	"github.com/edgewise-iot/edgewise/internal/edge/bridge"
	"github.com/edgewise-iot/edgewise/internal/edge/spool"
	"github.com/edgewise-iot/edgewise/internal/edge/uplink"
	"github.com/edgewise-iot/edgewise/internal/rules"
	"github.com/edgewise-iot/edgewise/internal/store"
)

// Agent is a running edge agent.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	lock    *os.File
	db      *sql.DB
	broker  *broker.Server
	bstore  *broker.FileStore
	spool   *spool.Spool
	bridge  *bridge.Bridge
	rules   *rules.Manager
	mqttLn  net.Listener
	httpLn  net.Listener
	http    *http.Server
	started time.Time
	closed  sync.Once

	rsMu    sync.Mutex // guards ruleset
	ruleset RuleSetState
}

// New builds the agent and binds its listeners without serving.
func New(ctx context.Context, cfg Config, log *slog.Logger) (_ *Agent, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Agent{cfg: cfg, log: log, started: time.Now()}
	defer func() {
		if err != nil {
			a.shutdown(context.Background())
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("agent: create data dir: %w", err)
	}
	if a.lock, err = lockDir(cfg.DataDir); err != nil {
		return nil, err
	}
	if a.db, err = store.OpenSQLite(ctx, filepath.Join(cfg.DataDir, "agent.db")); err != nil {
		return nil, err
	}
	fsync, _ := spool.ParseFsync(cfg.Spool.Fsync)
	policy, _ := spool.ParseDropPolicy(cfg.Spool.DropPolicy)
	if a.spool, err = spool.Open(spool.Options{
		Dir: filepath.Join(cfg.DataDir, "spool"), MaxBytes: cfg.Spool.MaxBytes, MaxAge: time.Duration(cfg.Spool.MaxAge),
		SegmentBytes: cfg.Spool.SegmentBytes, Fsync: fsync, FsyncInterval: time.Duration(cfg.Spool.FsyncInterval),
		Policy: policy, Logger: log.With("subsystem", "spool"),
	}); err != nil {
		return nil, err
	}
	uo, err := uplinkOptions(cfg, log.With("subsystem", "uplink"))
	if err != nil {
		return nil, err
	}
	pub := &lazyPublisher{}
	if a.bridge, err = bridge.New(bridge.Options{
		Agent: cfg.Name, Uplink: uo, Spool: a.spool, Forward: cfg.forwardRoutes(), Inbound: cfg.inboundRoutes(),
		Local: pub, OnRules: a.applyCentral, CatchUpRate: cfg.Uplink.CatchUpRate, BackoffMax: time.Duration(cfg.Uplink.ReconnectMax),
		Logger: log.With("subsystem", "bridge"),
	}); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if a.rules, err = rules.New(ctx, a.db, rules.Options{
		Logger: log.With("subsystem", "rules"), Publisher: pub, Ingest: a.bridge,
		QueueSize: cfg.Rules.QueueSize, ActionQueueSize: cfg.Rules.ActionQueueSize,
	}); err != nil {
		return nil, err
	}
	if err := a.applyLocal(ctx); err != nil {
		return nil, err
	}
	a.loadRuleSet()
	var sessions broker.SessionStore
	if cfg.MQTT.Persistence {
		if a.bstore, err = broker.OpenFileStore(filepath.Join(cfg.DataDir, "broker"),
			broker.FileStoreOptions{Logger: log.With("subsystem", "broker")}); err != nil {
			return nil, err
		}
		sessions = a.bstore
	}
	users := localUsers{}
	for _, u := range cfg.MQTT.Users {
		users[u.Username] = []byte(u.Password)
	}
	if a.broker, err = broker.New(broker.Options{
		Logger: log.With("subsystem", "broker"), Authenticator: users, Authorizer: users,
		// Rules first: they only enqueue, so a local alert does not wait
		// for the spool's fsync; the PUBACK waits for both.
		Hook:           broker.ChainHooks(a.rules, a.bridge),
		AllowAnonymous: cfg.MQTT.AllowAnonymous, MaxPacketSize: cfg.MQTT.MaxPacketSize,
		MaxInflight: cfg.MQTT.MaxInflight, MaxQueued: cfg.MQTT.MaxQueued, SessionStore: sessions,
	}); err != nil {
		return nil, err
	}
	pub.s = a.broker
	if a.mqttLn, err = net.Listen("tcp", cfg.MQTT.Addr); err != nil {
		return nil, fmt.Errorf("agent: MQTT listener on %s: %w", cfg.MQTT.Addr, err)
	}
	if cfg.MQTT.MaxConnections > 0 {
		a.mqttLn = &limitListener{Listener: a.mqttLn, sem: make(chan struct{}, cfg.MQTT.MaxConnections)}
	}
	if a.httpLn, err = net.Listen("tcp", cfg.HTTP.Addr); err != nil {
		return nil, fmt.Errorf("agent: HTTP listener on %s: %w", cfg.HTTP.Addr, err)
	}
	a.http = &http.Server{Handler: a.handler(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	return a, nil
}

// uplinkOptions builds the cloud connection from the configuration. An
// agent with a client certificate and no password logs in by the
// certificate alone (no username is sent): the cloud identifies its thing
// by the certificate and the client id.
func uplinkOptions(cfg Config, log *slog.Logger) (uplink.Options, error) {
	u := cfg.Uplink
	o := uplink.Options{ClientID: u.ClientID, Username: u.Username, KeepAlive: time.Duration(u.KeepAlive),
		SessionExpiry: time.Duration(u.SessionExpiry), MaxInflight: u.MaxInflight}
	if o.ClientID == "" {
		o.ClientID = cfg.Name
	}
	pw := u.Password
	if u.PasswordFile != "" {
		b, err := os.ReadFile(u.PasswordFile)
		if err != nil {
			return o, fmt.Errorf("agent: uplink.password_file: %w", err)
		}
		pw = strings.TrimSpace(string(b))
	}
	if pw != "" {
		o.Password = []byte(pw)
	}
	if o.Username == "" && (pw != "" || u.CertFile == "") {
		o.Username = cfg.Name
	}
	if u.Broker == "" {
		return o, nil
	}
	addr, useTLS, err := u.Endpoint()
	if err != nil {
		return o, fmt.Errorf("agent: %w", err)
	}
	o.Addr = addr
	if !useTLS {
		return o, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: u.ServerName, InsecureSkipVerify: u.InsecureSkipVerify}
	if tc.ServerName == "" {
		tc.ServerName, _, _ = net.SplitHostPort(addr)
	}
	if u.CAFile != "" {
		pem, err := os.ReadFile(u.CAFile)
		if err != nil {
			return o, fmt.Errorf("agent: uplink.ca_file: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return o, fmt.Errorf("agent: uplink.ca_file %s holds no PEM certificate", u.CAFile)
		}
	}
	if u.CertFile != "" {
		cc, err := newClientCert(u.CertFile, u.KeyFile, log)
		if err != nil {
			return o, err
		}
		tc.GetClientCertificate = cc.get
	}
	o.TLS = tc
	return o, nil
}

// applyLocal applies the rules of agent.yaml and the rules files.
func (a *Agent) applyLocal(ctx context.Context) error {
	defs := append([]rules.Definition(nil), a.cfg.Rules.Local...)
	for _, f := range a.cfg.Rules.Files {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("agent: rules file: %w", err)
		}
		d, err := rules.ParseFile(b)
		if err != nil {
			return fmt.Errorf("agent: %s: %w", f, err)
		}
		defs = append(defs, d...)
	}
	if len(defs) == 0 {
		return nil
	}
	res, err := a.rules.Apply(ctx, defs)
	if err != nil {
		return fmt.Errorf("agent: local rules: %w", err)
	}
	a.log.Info("local rules applied", "created", len(res.Created), "updated", len(res.Updated), "unchanged", len(res.Unchanged))
	return nil
}

// MQTTAddr and HTTPAddr are the bound listener addresses.
func (a *Agent) MQTTAddr() net.Addr { return a.mqttLn.Addr() }
func (a *Agent) HTTPAddr() net.Addr { return a.httpLn.Addr() }

// Run serves until ctx ends, then shuts down in order.
func (a *Agent) Run(ctx context.Context) error {
	errc := make(chan error, 2)
	go func() {
		if err := a.broker.Serve(a.mqttLn); err != nil && !errors.Is(err, broker.ErrServerClosed) {
			errc <- fmt.Errorf("agent: MQTT: %w", err)
		}
	}()
	go func() {
		if err := a.http.Serve(a.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("agent: HTTP: %w", err)
		}
	}()
	bctx, stopBridge := context.WithCancel(context.Background())
	bdone := make(chan struct{})
	go func() {
		defer close(bdone)
		if a.cfg.Uplink.Broker == "" {
			a.log.Warn("no uplink.broker configured: forwarded messages stay in the spool")
			<-bctx.Done()
			return
		}
		_ = a.bridge.Run(bctx)
	}()
	a.publishStatus()
	a.log.Info("edgewise agent running", "name", a.cfg.Name, "mqtt", a.MQTTAddr().String(), "http", a.HTTPAddr().String(),
		"uplink", a.cfg.Uplink.Broker, "data", a.cfg.DataDir, "spool_fsync", a.cfg.Spool.Fsync)
	var runErr error
	select {
	case <-ctx.Done():
		a.log.Info("shutting down")
	case runErr = <-errc:
		a.log.Error("listener failed; shutting down", "err", runErr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.http.Shutdown(sctx); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("agent: HTTP shutdown: %w", err))
	}
	// Local devices first (their accepted messages are in the spool), then
	// the uplink (unacknowledged records stay in the spool for next time).
	if err := a.broker.Close(sctx); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("agent: broker shutdown: %w", err))
	}
	if err := a.rules.Close(sctx); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("agent: rules shutdown: %w", err))
	}
	stopBridge()
	<-bdone
	return errors.Join(runErr, a.shutdown(sctx))
}

// Close releases an agent that was built but never run.
func (a *Agent) Close(ctx context.Context) error { return a.shutdown(ctx) }

func (a *Agent) shutdown(ctx context.Context) error {
	var errs []error
	a.closed.Do(func() {
		if a.httpLn != nil {
			a.httpLn.Close()
		}
		if a.broker != nil {
			if err := a.broker.Close(ctx); err != nil {
				errs = append(errs, err)
			}
		}
		if a.mqttLn != nil {
			a.mqttLn.Close()
		}
		if a.rules != nil {
			if err := a.rules.Close(ctx); err != nil && !errors.Is(err, rules.ErrClosed) {
				errs = append(errs, err)
			}
		}
		if a.bstore != nil {
			if err := a.bstore.Close(); err != nil {
				errs = append(errs, fmt.Errorf("agent: broker store: %w", err))
			}
		}
		if a.spool != nil {
			if err := a.spool.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if a.db != nil {
			if err := a.db.Close(); err != nil {
				errs = append(errs, fmt.Errorf("agent: database: %w", err))
			}
		}
		if a.lock != nil {
			a.lock.Close()
		}
		if len(errs) == 0 {
			a.log.Info("stopped cleanly")
		}
	})
	return errors.Join(errs...)
}

// lazyPublisher lets the rules and the bridge publish through the broker,
// which is built after them.
type lazyPublisher struct{ s *broker.Server }

func (p *lazyPublisher) Publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error {
	if p.s == nil {
		return broker.ErrServerClosed
	}
	return p.s.Publish(ctx, topic, payload, qos, retain)
}

// localUsers authenticates site devices against the static list of
// agent.yaml and lets them use any topic outside $.
type localUsers map[string][]byte

func (u localUsers) Authenticate(_ context.Context, c *broker.ConnectInfo) (*broker.Principal, error) {
	if !c.HasUsername || c.Username == "" {
		return nil, broker.ErrNoCredentials
	}
	pw, ok := u[c.Username]
	if !ok || subtle.ConstantTimeCompare(pw, c.Password) != 1 {
		return nil, broker.ErrBadCredentials
	}
	return &broker.Principal{Name: c.Username}, nil
}

func (u localUsers) CanPublish(_ *broker.Principal, topic string) bool {
	return !strings.HasPrefix(topic, "$")
}
func (u localUsers) CanSubscribe(_ *broker.Principal, filter string) bool {
	return !strings.HasPrefix(filter, "$") || strings.HasPrefix(filter, "$share/")
}

// limitListener bounds open local connections.
type limitListener struct {
	net.Listener
	sem chan struct{}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.sem <- struct{}{}:
			return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
		default:
			c.Close() // over mqtt.max_connections
		}
	}
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("agent: lock data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("agent: data dir %s is in use by another edgewise process: %w", dir, err)
	}
	return f, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
