package app

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
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

	"github.com/edgewise-iot/edgewise/internal/access"
	"github.com/edgewise-iot/edgewise/internal/api"
	"github.com/edgewise-iot/edgewise/internal/apply"
	"github.com/edgewise-iot/edgewise/internal/auth"
	"github.com/edgewise-iot/edgewise/internal/broker"
	"github.com/edgewise-iot/edgewise/internal/commands"
	"github.com/edgewise-iot/edgewise/internal/config"
	"github.com/edgewise-iot/edgewise/internal/edge/agents"
	"github.com/edgewise-iot/edgewise/internal/fleet"
	"github.com/edgewise-iot/edgewise/internal/influx"
	"github.com/edgewise-iot/edgewise/internal/ingest"
	"github.com/edgewise-iot/edgewise/internal/jobs"
	"github.com/edgewise-iot/edgewise/internal/pki"
	"github.com/edgewise-iot/edgewise/internal/policy"
	"github.com/edgewise-iot/edgewise/internal/registry"
	"github.com/edgewise-iot/edgewise/internal/rules"
	"github.com/edgewise-iot/edgewise/internal/rules/source"
	"github.com/edgewise-iot/edgewise/internal/rules/spool"
	"github.com/edgewise-iot/edgewise/internal/shadow"
	"github.com/edgewise-iot/edgewise/internal/store"
	"github.com/edgewise-iot/edgewise/internal/tsdb"
)

// TokenFile is the admin token's file name inside the data directory.
const TokenFile = "admin.token"

// App is a running Edgewise server.
type App struct {
	cfg    config.Config
	log    *slog.Logger
	token  string
	lock   *os.File
	db     *sql.DB
	reg    *registry.Registry
	pki    *pki.Service  // platform CA, device certificates, registered CAs
	pol    *policy.Store // authorization policies
	auth   *auth.Auth
	states *shadow.Store
	cat    *tsdb.Catalog
	ts     *tsdb.DB // the default database
	ingest *ingest.Pipeline
	broker *broker.Server
	bstore *broker.FileStore // nil when mqtt.persistence is off
	rules  *rules.Manager
	srcs   []*source.AMQP
	srcWG  sync.WaitGroup
	srcEnd context.CancelFunc
	http   *http.Server
	mqttLn net.Listener
	mqtt   mqttListeners
	httpLn net.Listener
	closed sync.Once

	// The device services (internal/shadow, internal/commands, internal/jobs).
	shadows  *shadow.Service
	commands *commands.Service
	jobs     *jobs.Service

	fleet  *fleet.Index    // fleet search over the registry
	access *access.Service // API tokens and the audit log
	agents *agents.Service // edge agents' central rule sets
}

// New opens the data directory and builds every subsystem, binding the
// listeners (so their addresses are known), without serving yet. On error
// everything opened so far is closed again.
func New(ctx context.Context, cfg config.Config, log *slog.Logger) (_ *App, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &App{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			a.shutdown(context.Background())
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("app: create data dir: %w", err)
	}
	if a.lock, err = lockDir(cfg.DataDir); err != nil {
		return nil, err
	}
	if a.token, err = adminToken(cfg, log); err != nil {
		return nil, err
	}
	if a.db, err = store.OpenSQLite(ctx, filepath.Join(cfg.DataDir, "registry.db")); err != nil {
		return nil, err
	}
	a.fleet = fleet.New(fleet.Options{Logger: log.With("subsystem", "fleet")})
	if a.reg, err = registry.New(ctx, a.db, registry.Options{Logger: log.With("subsystem", "registry"), Listener: a.fleet}); err != nil {
		return nil, err
	}
	if err = a.fleet.Load(ctx, a.reg); err != nil {
		return nil, err
	}
	if err := a.openIdentity(ctx, cfg, log); err != nil {
		return nil, err
	}
	a.pol.SetGroupResolver(a.fleet) // policies attached to groups reach their members
	if a.states, err = shadow.New(ctx, a.db, shadow.Options{Logger: log.With("subsystem", "shadow"), MaxDocumentBytes: cfg.Devices.ShadowMaxBytes}); err != nil {
		return nil, err
	}
	a.fleet.SetShadows(fleet.ShadowStore{Store: a.states})
	a.shadows = shadow.NewService(a.states, nil, shadow.ServiceOptions{Logger: log.With("subsystem", "shadow")})
	if a.commands, err = commands.New(ctx, a.db, nil, commands.Options{Logger: log.With("subsystem", "commands"), Retention: time.Duration(cfg.Devices.CommandRetention)}); err != nil {
		return nil, err
	}
	if a.jobs, err = jobs.New(ctx, a.db, a.reg, nil, jobs.Options{Logger: log.With("subsystem", "jobs"), Groups: a.fleet}); err != nil {
		return nil, err
	}
	if a.agents, err = agents.New(ctx, a.db, agents.Options{Logger: log.With("subsystem", "agents")}); err != nil {
		return nil, err
	}
	a.cat, err = tsdb.OpenCatalog(ctx, tsdb.CatalogOptions{
		Dir:             filepath.Join(cfg.DataDir, "tsdb"),
		Logger:          log.With("subsystem", "tsdb"),
		DefaultDatabase: cfg.Storage.Database,
		DB: tsdb.Options{
			Fsync:            tsdb.FsyncPolicy(cfg.Storage.Fsync),
			FsyncInterval:    time.Duration(cfg.Storage.FsyncInterval),
			BlockDuration:    time.Duration(cfg.Storage.BlockDuration),
			FlushInterval:    time.Duration(cfg.Storage.FlushInterval),
			MaxQuerySamples:  cfg.Storage.MaxQuerySamples,
			OutOfOrderWindow: time.Duration(cfg.Storage.OutOfOrderWindow),
			MaxSeries:        cfg.Storage.MaxSeries,
		},
	})
	if err != nil {
		return nil, err
	}
	if a.ts, err = a.cat.CreateDatabase(ctx, cfg.Storage.Database, tsdb.RetentionPolicy{Duration: time.Duration(cfg.Storage.Retention)}); err != nil {
		return nil, err
	}
	for _, r := range cfg.Storage.Rollups {
		if err := a.cat.AddRollup(ctx, tsdb.Rollup{Source: cfg.Storage.Database, Target: r.Database,
			Every: time.Duration(r.Every), Retention: time.Duration(r.Retention)}); err != nil {
			return nil, fmt.Errorf("app: storage.rollups %s: %w", r.Database, err)
		}
	}
	if a.ingest, err = ingest.NewPipeline(ingest.Options{
		Logger:      log.With("subsystem", "ingest"),
		Measurement: cfg.Ingest.Measurement,
		Points:      a.ts,
		State:       stateAdapter{a.shadows},
	}); err != nil {
		return nil, err
	}
	pub := &lazyPublisher{}
	if a.rules, err = rules.New(ctx, a.db, rules.Options{
		Logger:          log.With("subsystem", "rules"),
		Publisher:       pub,
		Ingest:          a.ingest,
		Points:          a.ts,
		Lookup:          thingLookup{a.reg},
		QueueSize:       cfg.Rules.QueueSize,
		ActionQueueSize: cfg.Rules.ActionQueueSize,
		MaxHops:         cfg.Rules.MaxHops,
		AllowedLateness: time.Duration(cfg.Rules.AllowedLateness),
		IdleTimeout:     time.Duration(cfg.Rules.IdleTimeout),
		SpoolDir:        rulesSpoolDir(cfg),
		Spool:           rulesSpoolOptions(cfg),
	}); err != nil {
		return nil, err
	}
	if err := a.loadRuleFiles(ctx); err != nil {
		return nil, err
	}
	for _, sc := range cfg.Rules.AMQPSources {
		c := source.Config{URL: sc.URL, Queue: sc.Queue, Topic: sc.Topic, Prefetch: sc.Prefetch, ClientID: sc.ClientID, AckBatch: sc.AckBatch}
		if sc.QoS != nil {
			q := byte(*sc.QoS)
			c.QoS = &q
		}
		src, err := source.NewAMQP(c, a.rules, log.With("subsystem", "source"))
		if err != nil {
			return nil, fmt.Errorf("app: %w", err)
		}
		a.srcs = append(a.srcs, src)
	}
	au := auth.New(auth.Options{AdminToken: a.token, Things: a.reg, Certs: a.pki, Lookup: a.reg, Policies: a.pol,
		DisablePassword: !cfg.Auth.Password, Logger: log.With("subsystem", "auth")})
	a.auth = au
	queuePolicy, err := broker.ParseDropPolicy(cfg.MQTT.QueuePolicy)
	if err != nil {
		return nil, err
	}
	var sessionStore broker.SessionStore
	if cfg.MQTT.Persistence {
		if a.bstore, err = broker.OpenFileStore(filepath.Join(cfg.DataDir, "broker"),
			broker.FileStoreOptions{Logger: log.With("subsystem", "broker")}); err != nil {
			return nil, err
		}
		sessionStore = a.bstore
	}
	topicAliasMax := cfg.MQTT.TopicAliasMax
	if topicAliasMax == 0 {
		topicAliasMax = -1 // none
	}
	backpressureWait := time.Duration(cfg.MQTT.BackpressureWait)
	if backpressureWait == 0 {
		backpressureWait = -1 // drop at once
	}
	if a.broker, err = broker.New(broker.Options{
		Logger:           log.With("subsystem", "broker"),
		Authenticator:    au,
		Authorizer:       au,
		Hook:             broker.ChainHooks(a.ingest, a.shadows, a.commands, a.jobs, a.agents, a.rules),
		Observer:         broker.ChainObservers(a.commands, a.fleet),
		AllowAnonymous:   cfg.MQTT.AllowAnonymous,
		MaxPacketSize:    cfg.MQTT.MaxPacketSize,
		ReceiveMaximum:   uint16(cfg.MQTT.ReceiveMaximum),
		MaxInflight:      cfg.MQTT.MaxInflight,
		MaxQueued:        cfg.MQTT.MaxQueued,
		MaxOutboundBytes: cfg.MQTT.MaxOutboundBytes,
		ConnectTimeout:   time.Duration(cfg.MQTT.ConnectTimeout),
		QueuePolicy:      queuePolicy,
		PublishRate:      cfg.MQTT.PublishRate,
		PublishBurst:     cfg.MQTT.PublishBurst,
		TopicAliasMax:    topicAliasMax,
		BackpressureWait: backpressureWait,
		SessionStore:     sessionStore,
	}); err != nil {
		return nil, err
	}
	if a.access, err = access.New(ctx, a.db, access.Options{Logger: log.With("subsystem", "access"), AdminToken: a.token}); err != nil {
		return nil, err
	}
	influxSrv, err := influx.New(influx.Options{
		Catalog:        a.cat,
		Auth:           access.InfluxChecker{S: a.access},
		AllowAnonymous: cfg.Influx.AllowAnonymous,
		Logger:         log.With("subsystem", "influx"),
		MaxBodyBytes:   cfg.Influx.MaxBodyBytes,
		QueryTimeout:   time.Duration(cfg.Influx.QueryTimeout),
		QueryMaxPoints: cfg.Storage.MaxQuerySamples,
		Org:            cfg.Influx.Org,
	})
	if err != nil {
		return nil, err
	}
	pub.s = a.broker
	au.SetDisconnector(a.broker)
	a.pki.OnChange(au.CertificateChanged)
	a.shadows.SetPublisher(a.broker)
	a.commands.SetPublisher(a.broker)
	a.jobs.SetPublisher(a.broker)
	a.agents.SetPublisher(a.broker)
	if err := a.agents.PublishAll(ctx); err != nil {
		return nil, err
	}
	apiSrv, err := api.New(api.Options{
		Influx:      influxSrv,
		InfluxPaths: influx.Paths(),
		Pprof:       cfg.HTTP.Pprof,
		Logger:      log.With("subsystem", "api"),
		Token:       a.token,
		Registry:    a.reg,
		States:      a.states,
		Store:       a.ts,
		Measurement: cfg.Ingest.Measurement,
		Stats:       a.Stats,
		Rules:       a.rules,
		Shadows:     a.shadows,
		Commands:    a.commands,
		Jobs:        a.jobs,
		Fleet:       a.reg,
		Search:      a.fleet,
		Access:      a.access,
		Apply:       &apply.Applier{Registry: a.reg, Rules: a.rules, Policies: a.pol, Certs: a.pki, States: a.states},
		Certs:       a.pki,
		Policies:    a.pol,
		Agents:      a.agents,
	})
	if err != nil {
		return nil, err
	}
	if err = a.listenMQTT(cfg.MQTT, log.With("subsystem", "broker")); err != nil {
		return nil, err
	}
	a.http = &http.Server{
		Handler:           a.mountWebSocket(cfg.MQTT.WebSocket, apiSrv.Handler()),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	if a.httpLn, err = net.Listen("tcp", cfg.HTTP.Addr); err != nil {
		return nil, fmt.Errorf("app: HTTP listener on %s: %w", cfg.HTTP.Addr, err)
	}
	return a, nil
}

// MQTTAddr is the bound MQTT listener address.
func (a *App) MQTTAddr() net.Addr { return a.mqttLn.Addr() }

// HTTPAddr is the bound HTTP listener address.
func (a *App) HTTPAddr() net.Addr { return a.httpLn.Addr() }

// AdminToken is the API's admin bearer token.
func (a *App) AdminToken() string { return a.token }

// Run serves until ctx is cancelled or a listener fails, then shuts down in
// order. It returns nil after a clean shutdown.
func (a *App) Run(ctx context.Context) error {
	errc := make(chan error, 6)
	go func() {
		if err := a.broker.Serve(a.mqttLn); err != nil {
			errc <- fmt.Errorf("app: MQTT: %w", err)
		}
	}()
	go func() {
		if err := a.http.Serve(a.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("app: HTTP: %w", err)
		}
	}()
	srcCtx, stopSources := context.WithCancel(context.Background())
	a.srcEnd = stopSources
	for _, src := range a.srcs {
		a.srcWG.Add(1)
		go func() {
			defer a.srcWG.Done()
			_ = src.Run(srcCtx) // returns nil once stopped; it logs and retries failures itself
		}()
	}
	a.log.Info("edgewise serving", "mqtt", a.MQTTAddr().String(), "http", a.HTTPAddr().String(),
		"data", a.cfg.DataDir, "allow_anonymous", a.cfg.MQTT.AllowAnonymous, "fsync", a.cfg.Storage.Fsync)
	a.serveMQTT(ctx, errc)
	var runErr error
	select {
	case <-ctx.Done():
		a.log.Info("shutting down")
	case runErr = <-errc:
		a.log.Error("listener failed; shutting down", "err", runErr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.shutdown(sctx); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

// Close shuts down a server that was built but never run.
func (a *App) Close(ctx context.Context) error { return a.shutdown(ctx) }

func (a *App) shutdown(ctx context.Context) error {
	var errs []error
	a.closed.Do(func() {
		if a.http != nil {
			if err := a.http.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("app: HTTP shutdown: %w", err))
			}
		}
		if a.httpLn != nil {
			a.httpLn.Close() // already closed by Shutdown when it was serving
		}
		if a.srcEnd != nil {
			a.srcEnd()
			a.srcWG.Wait()
		}
		if err := a.closeMQTT(ctx); err != nil {
			errs = append(errs, err)
		}
		if a.broker != nil {
			if err := a.broker.Close(ctx); err != nil {
				errs = append(errs, fmt.Errorf("app: broker shutdown: %w", err))
			}
		}
		if a.mqttLn != nil {
			a.mqttLn.Close()
		}
		a.mqtt.closeListeners()
		if a.bstore != nil {
			if err := a.bstore.Close(); err != nil {
				errs = append(errs, fmt.Errorf("app: broker session store close: %w", err))
			}
		}
		if a.rules != nil {
			if err := a.rules.Close(ctx); err != nil {
				errs = append(errs, fmt.Errorf("app: rules shutdown: %w", err))
			}
		}
		if a.cat != nil {
			if err := a.cat.Close(); err != nil {
				errs = append(errs, fmt.Errorf("app: tsdb close: %w", err))
			}
		}
		if a.commands != nil {
			if err := a.commands.Close(ctx); err != nil {
				errs = append(errs, fmt.Errorf("app: commands close: %w", err))
			}
		}
		if a.jobs != nil {
			if err := a.jobs.Close(ctx); err != nil {
				errs = append(errs, fmt.Errorf("app: jobs close: %w", err))
			}
		}
		if a.states != nil {
			if err := a.states.Close(ctx); err != nil {
				errs = append(errs, fmt.Errorf("app: state close: %w", err))
			}
		}
		if a.db != nil {
			if err := a.db.Close(); err != nil {
				errs = append(errs, fmt.Errorf("app: registry close: %w", err))
			}
		}
		if a.lock != nil {
			a.lock.Close() // releases the flock
		}
		if len(errs) == 0 {
			a.log.Info("stopped cleanly")
		}
	})
	return errors.Join(errs...)
}

// Stats is the body of GET /api/v1/stats.
func (a *App) Stats() any {
	st := map[string]any{
		"broker": a.broker.Stats(),
		"mqtt":   map[string]any{"listeners": a.ListenerStats()},
		"ingest": a.ingest.Stats(),
		"tsdb":   a.tsdbStats(),
		"rules":  a.rulesStats(),
	}
	st["shadow"], st["commands"] = a.shadows.Stats(), a.commands.Stats()
	return st
}

func (a *App) rulesStats() any {
	srcs := make([]source.Stats, len(a.srcs))
	for i, s := range a.srcs {
		srcs[i] = s.Stats()
	}
	return map[string]any{"engine": a.rules.Summary(), "amqp_sources": srcs}
}

// loadRuleFiles applies the rules files named in the configuration.
func (a *App) loadRuleFiles(ctx context.Context) error {
	for _, f := range a.cfg.Rules.Files {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("app: rules file: %w", err)
		}
		defs, err := rules.ParseFile(b)
		if err != nil {
			return fmt.Errorf("app: %s: %w", f, err)
		}
		res, err := a.rules.Apply(ctx, defs)
		if err != nil {
			return fmt.Errorf("app: %s: %w", f, err)
		}
		a.log.Info("rules file applied", "file", f, "created", len(res.Created), "updated", len(res.Updated), "unchanged", len(res.Unchanged))
	}
	return nil
}

// lazyPublisher lets the rules manager publish through the broker, which
// is built after it (the broker's hook is the manager).
type lazyPublisher struct{ s *broker.Server }

func (p *lazyPublisher) Publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error {
	if p.s == nil {
		return broker.ErrServerClosed
	}
	return p.s.Publish(ctx, topic, payload, qos, retain)
}

// thingLookup answers the rules' registry lookups.
type thingLookup struct{ r *registry.Registry }

func (l thingLookup) ThingAttribute(ctx context.Context, thing, attr string) (string, bool) {
	t, err := l.r.GetThing(ctx, thing)
	if err != nil {
		return "", false
	}
	v, ok := t.Attributes[attr]
	return v, ok
}

func (l thingLookup) ThingType(ctx context.Context, thing string) (string, bool) {
	t, err := l.r.GetThing(ctx, thing)
	if err != nil || t.Type == "" {
		return "", false
	}
	return t.Type, true
}

// stateAdapter narrows the shadow service to what ingest needs: a report
// on devices/{id}/state updates the classic shadow and publishes deltas.
type stateAdapter struct{ s *shadow.Service }

func (s stateAdapter) UpdateReported(ctx context.Context, thing string, patch map[string]any, t time.Time) error {
	return s.s.ReportState(ctx, thing, patch, t)
}

// lockDir takes an exclusive flock on DIR/LOCK so two servers never share a
// data directory.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("app: lock data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("app: data dir %s is in use by another edgewise process: %w", dir, err)
	}
	return f, nil
}

// adminToken returns EDGEWISE_ADMIN_TOKEN, or the token kept in the data
// dir, creating it (mode 0600) on first start.
func adminToken(cfg config.Config, log *slog.Logger) (string, error) {
	if cfg.AdminToken != "" {
		log.Info("admin token taken from EDGEWISE_ADMIN_TOKEN")
		return cfg.AdminToken, nil
	}
	path := filepath.Join(cfg.DataDir, TokenFile)
	if b, err := os.ReadFile(path); err == nil {
		tok := strings.TrimSpace(string(b))
		if len(tok) < 16 {
			return "", fmt.Errorf("app: %s holds no valid token (delete it to generate a new one)", path)
		}
		log.Info("admin token loaded", "file", path)
		return tok, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("app: read admin token: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("app: generate admin token: %w", err)
	}
	tok := hex.EncodeToString(raw)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("app: write admin token: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("app: write admin token: %w", err)
	}
	log.Info("admin token generated", "file", path)
	return tok, nil
}

// rulesSpoolDir is where durable rule actions keep their queues ("" when
// rules.spool is false).
func rulesSpoolDir(cfg config.Config) string {
	if cfg.Rules.Spool != nil && !*cfg.Rules.Spool {
		return ""
	}
	return filepath.Join(cfg.DataDir, "rules", "spool")
}

func rulesSpoolOptions(cfg config.Config) spool.Options {
	f, _ := spool.ParseFsync(cfg.Rules.SpoolFsync) // validated by config
	return spool.Options{Fsync: f, Interval: time.Duration(cfg.Rules.SpoolFsyncInterval), MaxBytes: cfg.Rules.SpoolMaxBytes}
}
