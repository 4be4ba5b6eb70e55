package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"
)

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid configuration")

// Duration is a time.Duration that reads "10s"-style strings from YAML.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (use e.g. 500ms, 10s, 2h)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Config is the whole server configuration.
type Config struct {
	// DataDir holds the registry database, the time-series store and the
	// admin token.
	DataDir string  `yaml:"data_dir"`
	Log     Log     `yaml:"log"`
	MQTT    MQTT    `yaml:"mqtt"`
	HTTP    HTTP    `yaml:"http"`
	Storage Storage `yaml:"storage"`
	Ingest  Ingest  `yaml:"ingest"`
	Influx  Influx  `yaml:"influx"`
	Rules   Rules   `yaml:"rules"`
	Devices Devices `yaml:"devices"`
	PKI     PKI     `yaml:"pki"`
	Auth    Auth    `yaml:"auth"`
	// AdminToken is the API's admin bearer token (and the password of the
	// "admin" MQTT user). It comes only from EDGEWISE_ADMIN_TOKEN, never from
	// the file; when empty the server keeps one in DataDir/admin.token.
	AdminToken string `yaml:"-"`
}

// Log configures structured logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// MQTT configures the broker's TCP listener and limits.
type MQTT struct {
	Addr             string   `yaml:"addr"`
	AllowAnonymous   bool     `yaml:"allow_anonymous"`
	MaxPacketSize    int      `yaml:"max_packet_size"`
	ReceiveMaximum   int      `yaml:"receive_maximum"`
	MaxInflight      int      `yaml:"max_inflight"`
	MaxQueued        int      `yaml:"max_queued"`
	MaxOutboundBytes int      `yaml:"max_outbound_bytes"`
	ConnectTimeout   Duration `yaml:"connect_timeout"`
	// Persistence keeps persistent sessions (subscriptions, queued and
	// inflight QoS 1/2 messages) and retained messages in DataDir/broker
	// across restarts (default true).
	Persistence bool `yaml:"persistence"`
	// QueuePolicy applies when a session queue reaches max_queued:
	// drop_oldest (default), drop_newest or disconnect.
	QueuePolicy string `yaml:"queue_policy"`
	// BackpressureWait is how long a publisher's QoS 1/2 messages may be
	// held back (its connection not read) while an online subscriber's
	// queue is full, before queue_policy drops (default 2s; 0: drop at once).
	BackpressureWait Duration `yaml:"backpressure_wait"`
	// PublishRate limits PUBLISH packets per second per connection (0:
	// unlimited); PublishBurst is the burst allowed above it.
	PublishRate   int `yaml:"publish_rate"`
	PublishBurst  int `yaml:"publish_burst"`
	TopicAliasMax int `yaml:"topic_alias_maximum"`

	// Limits of the TCP listener; mqtt.tls and mqtt.websocket have their own.
	ListenerLimits `yaml:",inline"`
	// SysInterval is how often $SYS/broker/... statistics are published
	// (default 10s; 0 disables).
	SysInterval Duration      `yaml:"sys_interval"`
	TLS         MQTTTLS       `yaml:"tls"`
	WebSocket   MQTTWebSocket `yaml:"websocket"`
}

// ListenerLimits bound what one MQTT listener accepts (0 = no limit).
// Connections beyond them are closed at accept and counted.
type ListenerLimits struct {
	MaxConnections int     `yaml:"max_connections"` // open at once
	ConnectRate    float64 `yaml:"connect_rate"`    // new connections per second, sustained
	ConnectBurst   int     `yaml:"connect_burst"`   // new connections at once (default connect_rate)
}

// MQTTTLS configures the MQTT over TLS listener (off while Addr is empty).
type MQTTTLS struct {
	Addr       string `yaml:"addr"`
	CertFile   string `yaml:"cert_file"`   // PEM certificate chain, reloaded when it changes
	KeyFile    string `yaml:"key_file"`    // PEM private key
	MinVersion string `yaml:"min_version"` // 1.2 (default) or 1.3
	// ClientAuth is none (default), optional or require: whether clients
	// must present a certificate issued by a CA of ClientCAFile.
	ClientAuth     string `yaml:"client_auth"`
	ClientCAFile   string `yaml:"client_ca_file"`
	ListenerLimits `yaml:",inline"`
}

// PKI configures the platform CA and the certificates it issues.
type PKI struct {
	// CACertFile and CAKeyFile supply the platform CA (PEM); when empty a
	// CA is created on first start under DataDir/pki.
	CACertFile string `yaml:"ca_cert_file"`
	CAKeyFile  string `yaml:"ca_key_file"`
	// ServerNames are the DNS names and IP addresses of the TLS server
	// certificate the platform CA issues when mqtt.tls.cert_file is empty
	// (default localhost, 127.0.0.1, ::1 and the host name).
	ServerNames []string `yaml:"server_names"`
	// CertValidity of issued device certificates (default 10 years).
	CertValidity Duration `yaml:"cert_validity"`
}

// Auth configures how devices authenticate.
type Auth struct {
	// Password lets things log in with username and password (default
	// true); false requires client certificates (the admin user keeps its
	// token).
	Password bool `yaml:"password"`
}

// MQTTWebSocket configures MQTT over WebSocket (subprotocol "mqtt").
type MQTTWebSocket struct {
	// Addr is a listener of its own (off while empty).
	Addr string `yaml:"addr"`
	// Path is the WebSocket endpoint (default /mqtt).
	Path string `yaml:"path"`
	// OnHTTP also serves Path on the HTTP API listener.
	OnHTTP bool `yaml:"on_http"`
	// TLS serves Addr as wss:// with the mqtt.tls certificate.
	TLS            bool `yaml:"tls"`
	ListenerLimits `yaml:",inline"`
}

// HTTP configures the API listener.
type HTTP struct {
	Addr string `yaml:"addr"`
	// Pprof serves Go's profiler under /debug/pprof/ (admin token required);
	// EDGEWISE_PPROF=true sets it.
	Pprof bool `yaml:"pprof"`
}

// Storage configures the time-series store.
type Storage struct {
	// Fsync is the WAL policy: always (default), interval or never.
	Fsync         string   `yaml:"fsync"`
	FsyncInterval Duration `yaml:"fsync_interval"`
	BlockDuration Duration `yaml:"block_duration"`
	FlushInterval Duration `yaml:"flush_interval"`
	// Database receives MQTT telemetry and writes that name no database
	// (default "edgewise"); Retention is its retention (0 = forever).
	Database        string   `yaml:"database"`
	Retention       Duration `yaml:"retention"`
	MaxQuerySamples int      `yaml:"max_query_samples"` // per query; 0 = unlimited
	// OutOfOrderWindow rejects points older than the newest written minus
	// the window (0 = accept any age); MaxSeries bounds series per database.
	OutOfOrderWindow Duration `yaml:"out_of_order_window"`
	MaxSeries        int      `yaml:"max_series"`
	// Rollups keep downsampled mean/min/max/count of Database in other
	// databases (every must divide block_duration).
	Rollups []Rollup `yaml:"rollups"`
}

// Rollup is one downsampled copy of the default database.
type Rollup struct {
	Database  string   `yaml:"database"`  // target database
	Every     Duration `yaml:"every"`     // window width, e.g. 1m or 1h
	Retention Duration `yaml:"retention"` // of the target; 0 = forever
}

// Influx configures the InfluxDB-compatible HTTP API.
type Influx struct {
	// AllowAnonymous accepts requests without credentials (TSBS, old
	// Telegraf configurations); --allow-anonymous sets it with the MQTT one.
	AllowAnonymous bool  `yaml:"allow_anonymous"`
	MaxBodyBytes   int64 `yaml:"max_body_bytes"` // write body after gunzip; default 64 MiB
	// QueryTimeout bounds one /query or /api/v2/query request (default 30s).
	QueryTimeout Duration `yaml:"query_timeout"`
	// Org is the name of the one organisation of the v2 API (default
	// "edgewise"): what GET /api/v2/orgs answers when no name is asked.
	Org string `yaml:"org"`
}

// Devices configures shadows, commands and jobs.
type Devices struct {
	// ShadowMaxBytes bounds a shadow's state (desired + reported JSON);
	// default 8192, as AWS IoT.
	ShadowMaxBytes int `yaml:"shadow_max_bytes"`
	// CommandRetention is how long finished commands are kept (default 7 days).
	CommandRetention Duration `yaml:"command_retention"`
}

// Ingest configures how MQTT telemetry becomes points.
type Ingest struct {
	// Measurement receives device telemetry (default "telemetry").
	Measurement string `yaml:"measurement"`
}

// Rules configures the rules engine.
type Rules struct {
	// Files are YAML rule files applied at start (created or updated by
	// name; rules not in a file are left alone).
	Files []string `yaml:"files"`
	// AMQPSources are RabbitMQ queues injected as MQTT publishes.
	AMQPSources []AMQPSource `yaml:"amqp_sources"`
	// QueueSize bounds the messages waiting for one rule, ActionQueueSize
	// the items waiting for one action (0: 10000 each).
	QueueSize       int `yaml:"queue_size"`
	ActionQueueSize int `yaml:"action_queue_size"`
	// MaxHops bounds republish chains between rules (0: 8).
	MaxHops int `yaml:"max_hops"`
	// AllowedLateness of event time and IdleTimeout of windows (0: the
	// window length; negative: never).
	AllowedLateness Duration `yaml:"allowed_lateness"`
	IdleTimeout     Duration `yaml:"idle_timeout"`
	// Spool keeps the queues of durable actions in DataDir/rules/spool
	// (default true; false keeps every action queue in memory).
	// SpoolFsync is always (default: fsync before the PUBACK, group
	// commit) or interval (written before the PUBACK, synced every
	// SpoolFsyncInterval, default 1s). SpoolMaxBytes bounds each action's
	// spool (default 256 MiB); beyond it new items are dropped and counted.
	Spool              *bool    `yaml:"spool"`
	SpoolFsync         string   `yaml:"spool_fsync"`
	SpoolFsyncInterval Duration `yaml:"spool_fsync_interval"`
	SpoolMaxBytes      int64    `yaml:"spool_max_bytes"`
}

// AMQPSource is one RabbitMQ queue consumed into MQTT topics.
type AMQPSource struct {
	URL      string `yaml:"url"`
	Queue    string `yaml:"queue"`
	Topic    string `yaml:"topic"` // template, e.g. devices/${headers.device_id}/telemetry
	Prefetch int    `yaml:"prefetch"`
	QoS      *int   `yaml:"qos"`
	ClientID string `yaml:"client_id"`
	AckBatch int    `yaml:"ack_batch"` // messages settled per basic.ack (0: prefetch/2)
}

// Default returns the configuration used when nothing else is given.
func Default() Config {
	return Config{
		DataDir: "./data",
		Log:     Log{Level: "info", Format: "text"},
		MQTT: MQTT{
			Addr:             ":1883",
			MaxPacketSize:    1 << 20,
			ReceiveMaximum:   1024,
			MaxInflight:      64,
			MaxQueued:        1000,
			MaxOutboundBytes: 1 << 20,
			ConnectTimeout:   Duration(10 * time.Second),
			Persistence:      true,
			QueuePolicy:      "drop_oldest",
			TopicAliasMax:    64,
			BackpressureWait: Duration(2 * time.Second),

			SysInterval: Duration(10 * time.Second),
			TLS:         MQTTTLS{MinVersion: "1.2", ClientAuth: "optional"},
			WebSocket:   MQTTWebSocket{Path: "/mqtt"},
		},
		HTTP: HTTP{Addr: ":8080"},
		Storage: Storage{
			Fsync:         "always",
			FsyncInterval: Duration(time.Second),
			BlockDuration: Duration(2 * time.Hour),
			FlushInterval: Duration(time.Minute),
			Database:      "edgewise",
		},
		Influx:  Influx{MaxBodyBytes: 64 << 20, QueryTimeout: Duration(30 * time.Second), Org: "edgewise"},
		Ingest:  Ingest{Measurement: "telemetry"},
		Devices: Devices{ShadowMaxBytes: 8192, CommandRetention: Duration(7 * 24 * time.Hour)},
		Auth:    Auth{Password: true},
	}
}

// Load returns the defaults overlaid with the YAML file at path (if path is
// not empty) and then with the environment read through getenv (os.Getenv
// when nil). It validates the result.
func Load(path string, getenv func(string) string) (Config, error) {
	c := Default()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return c, fmt.Errorf("config: read %s: %w", path, err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
			return c, fmt.Errorf("config: %s: %w: %v", path, ErrInvalid, err)
		}
	}
	if getenv == nil {
		getenv = os.Getenv
	}
	if err := c.applyEnv(getenv); err != nil {
		return c, err
	}
	return c, c.Validate()
}

func (c *Config) applyEnv(getenv func(string) string) error {
	str := map[string]*string{
		"EDGEWISE_DATA":       &c.DataDir,
		"EDGEWISE_MQTT_ADDR":  &c.MQTT.Addr,
		"EDGEWISE_HTTP_ADDR":  &c.HTTP.Addr,
		"EDGEWISE_LOG_LEVEL":  &c.Log.Level,
		"EDGEWISE_LOG_FORMAT": &c.Log.Format,
		"EDGEWISE_FSYNC":      &c.Storage.Fsync,

		"EDGEWISE_MQTT_TLS_ADDR":        &c.MQTT.TLS.Addr,
		"EDGEWISE_MQTT_TLS_CERT":        &c.MQTT.TLS.CertFile,
		"EDGEWISE_MQTT_TLS_KEY":         &c.MQTT.TLS.KeyFile,
		"EDGEWISE_MQTT_TLS_CLIENT_AUTH": &c.MQTT.TLS.ClientAuth,
		"EDGEWISE_MQTT_TLS_CLIENT_CA":   &c.MQTT.TLS.ClientCAFile,
		"EDGEWISE_MQTT_WS_ADDR":         &c.MQTT.WebSocket.Addr,
	}
	for k, p := range str {
		if v := getenv(k); v != "" {
			*p = v
		}
	}
	c.AdminToken = getenv("EDGEWISE_ADMIN_TOKEN")
	if v := getenv("EDGEWISE_ALLOW_ANONYMOUS"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("config: EDGEWISE_ALLOW_ANONYMOUS=%q: %w: want true or false", v, ErrInvalid)
		}
		c.MQTT.AllowAnonymous = b
		c.Influx.AllowAnonymous = b
	}
	if v := getenv("EDGEWISE_AUTH_PASSWORD"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("config: EDGEWISE_AUTH_PASSWORD=%q: %w: want true or false", v, ErrInvalid)
		}
		c.Auth.Password = b
	}
	if v := getenv("EDGEWISE_PPROF"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("config: EDGEWISE_PPROF=%q: %w: want true or false", v, ErrInvalid)
		}
		c.HTTP.Pprof = b
	}
	if v := getenv("EDGEWISE_MQTT_PERSISTENCE"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("config: EDGEWISE_MQTT_PERSISTENCE=%q: %w: want true or false", v, ErrInvalid)
		}
		c.MQTT.Persistence = b
	}
	if v := getenv("EDGEWISE_MQTT_SYS_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("config: EDGEWISE_MQTT_SYS_INTERVAL=%q: %w: want a duration such as 10s, or 0 to disable", v, ErrInvalid)
		}
		c.MQTT.SysInterval = Duration(d)
	}
	if v := getenv("EDGEWISE_MQTT_MAX_CONNECTIONS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("config: EDGEWISE_MQTT_MAX_CONNECTIONS=%q: %w: want a number", v, ErrInvalid)
		}
		c.MQTT.MaxConnections = n
	}
	return nil
}

// Validate reports the first invalid setting with a sentence saying why.
func (c *Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("config: %s: %w", fmt.Sprintf(format, a...), ErrInvalid)
	}
	if strings.TrimSpace(c.DataDir) == "" {
		return bad("data_dir must not be empty")
	}
	for name, addr := range map[string]string{"mqtt.addr": c.MQTT.Addr, "http.addr": c.HTTP.Addr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return bad("%s %q is not HOST:PORT", name, addr)
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return bad("log.level %q must be debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return bad("log.format %q must be text or json", c.Log.Format)
	}
	switch c.Storage.Fsync {
	case "always", "interval", "never":
	default:
		return bad("storage.fsync %q must be always, interval or never", c.Storage.Fsync)
	}
	if c.MQTT.MaxPacketSize < 64 || c.MQTT.MaxPacketSize > 256<<20 {
		return bad("mqtt.max_packet_size %d must be between 64 and 268435456 bytes", c.MQTT.MaxPacketSize)
	}
	if c.MQTT.ReceiveMaximum < 1 || c.MQTT.ReceiveMaximum > 65535 {
		return bad("mqtt.receive_maximum %d must be between 1 and 65535", c.MQTT.ReceiveMaximum)
	}
	if c.MQTT.MaxInflight < 1 || c.MQTT.MaxInflight > 65535 {
		return bad("mqtt.max_inflight %d must be between 1 and 65535", c.MQTT.MaxInflight)
	}
	if c.MQTT.MaxQueued < 0 {
		return bad("mqtt.max_queued %d must not be negative", c.MQTT.MaxQueued)
	}
	if c.MQTT.MaxOutboundBytes < 4096 {
		return bad("mqtt.max_outbound_bytes %d must be at least 4096", c.MQTT.MaxOutboundBytes)
	}
	if c.MQTT.ConnectTimeout <= 0 {
		return bad("mqtt.connect_timeout must be positive")
	}
	switch c.MQTT.QueuePolicy {
	case "drop_oldest", "drop_newest", "disconnect":
	default:
		return bad("mqtt.queue_policy %q must be drop_oldest, drop_newest or disconnect", c.MQTT.QueuePolicy)
	}
	if c.MQTT.BackpressureWait < 0 {
		return bad("mqtt.backpressure_wait must not be negative")
	}
	if c.MQTT.PublishRate < 0 || c.MQTT.PublishBurst < 0 {
		return bad("mqtt.publish_rate and mqtt.publish_burst must not be negative")
	}
	if c.MQTT.TopicAliasMax < 0 || c.MQTT.TopicAliasMax > 65535 {
		return bad("mqtt.topic_alias_maximum %d must be between 0 and 65535", c.MQTT.TopicAliasMax)
	}
	if err := c.MQTT.validateListeners(bad); err != nil {
		return err
	}
	if c.Storage.FsyncInterval <= 0 || c.Storage.BlockDuration < Duration(time.Minute) || c.Storage.FlushInterval <= 0 {
		return bad("storage intervals must be positive and block_duration at least 1m")
	}
	if c.Influx.QueryTimeout < 0 {
		return bad("influx.query_timeout must not be negative")
	}
	if c.Influx.Org == "" || len(c.Influx.Org) > 255 || strings.ContainsFunc(c.Influx.Org, unicode.IsControl) {
		return bad("influx.org %q must be 1-255 printable characters", c.Influx.Org)
	}
	if c.Storage.Database == "" || c.Storage.Retention < 0 || c.Storage.MaxQuerySamples < 0 || c.Storage.OutOfOrderWindow < 0 || c.Storage.MaxSeries < 0 || c.Influx.MaxBodyBytes < 1024 {
		return bad("storage.database must not be empty, storage.retention and max_query_samples not negative, influx.max_body_bytes at least 1024")
	}
	if c.AdminToken != "" && len(c.AdminToken) < 16 {
		return bad("EDGEWISE_ADMIN_TOKEN must be at least 16 characters")
	}
	if c.Ingest.Measurement == "" {
		return bad("ingest.measurement must not be empty")
	}
	if c.Devices.ShadowMaxBytes < 256 || c.Devices.ShadowMaxBytes > 1<<20 {
		return bad("devices.shadow_max_bytes %d must be between 256 and 1048576", c.Devices.ShadowMaxBytes)
	}
	if c.Devices.CommandRetention < Duration(time.Minute) {
		return bad("devices.command_retention must be at least 1m")
	}
	if c.Rules.QueueSize < 0 || c.Rules.ActionQueueSize < 0 || c.Rules.MaxHops < 0 || c.Rules.AllowedLateness < 0 {
		return bad("rules.queue_size, action_queue_size, max_hops and allowed_lateness must not be negative")
	}
	if f := c.Rules.SpoolFsync; f != "" && f != "always" && f != "interval" {
		return bad("rules.spool_fsync %q must be always or interval", f)
	}
	if c.Rules.SpoolFsyncInterval < 0 || c.Rules.SpoolMaxBytes < 0 {
		return bad("rules.spool_fsync_interval and spool_max_bytes must not be negative")
	}
	for i, s := range c.Rules.AMQPSources {
		if s.URL == "" || s.Queue == "" || s.Topic == "" {
			return bad("rules.amqp_sources[%d] needs url, queue and topic", i)
		}
		if s.QoS != nil && (*s.QoS < 0 || *s.QoS > 1) {
			return bad("rules.amqp_sources[%d].qos %d must be 0 or 1", i, *s.QoS)
		}
	}
	if (c.PKI.CACertFile == "") != (c.PKI.CAKeyFile == "") {
		return bad("pki.ca_cert_file and pki.ca_key_file go together")
	}
	if c.PKI.CertValidity < 0 {
		return bad("pki.cert_validity must not be negative")
	}
	return nil
}

func (m *MQTT) validateListeners(bad func(string, ...any) error) error {
	limits := map[string]ListenerLimits{"mqtt": m.ListenerLimits, "mqtt.tls": m.TLS.ListenerLimits, "mqtt.websocket": m.WebSocket.ListenerLimits}
	for name, l := range limits {
		if l.MaxConnections < 0 || l.ConnectRate < 0 || l.ConnectBurst < 0 {
			return bad("%s.max_connections, connect_rate and connect_burst must not be negative", name)
		}
	}
	if m.SysInterval < 0 || (m.SysInterval > 0 && m.SysInterval < Duration(100*time.Millisecond)) {
		return bad("mqtt.sys_interval %s must be 0 (off) or at least 100ms", time.Duration(m.SysInterval))
	}
	t := m.TLS
	switch t.MinVersion {
	case "", "1.2", "1.3":
	default:
		return bad("mqtt.tls.min_version %q must be 1.2 or 1.3", t.MinVersion)
	}
	switch t.ClientAuth {
	case "", "none", "optional", "require":
	default:
		return bad("mqtt.tls.client_auth %q must be none, optional or require", t.ClientAuth)
	}
	if t.Addr != "" || m.WebSocket.TLS {
		if _, _, err := net.SplitHostPort(t.Addr); t.Addr != "" && err != nil {
			return bad("mqtt.tls.addr %q is not HOST:PORT", t.Addr)
		}
		// Without files the platform CA issues the server certificate;
		// client certificates are verified against the platform CA and the
		// registered CAs (client_ca_file adds CAs to those).
		if (t.CertFile == "") != (t.KeyFile == "") {
			return bad("mqtt.tls.cert_file and mqtt.tls.key_file go together (or leave both empty for a certificate from the platform CA)")
		}
	}

	w := m.WebSocket
	if w.Addr != "" {
		if _, _, err := net.SplitHostPort(w.Addr); err != nil {
			return bad("mqtt.websocket.addr %q is not HOST:PORT", w.Addr)
		}
	}
	if (w.Addr != "" || w.OnHTTP) && !strings.HasPrefix(w.Path, "/") {
		return bad("mqtt.websocket.path %q must start with /", w.Path)
	}
	if w.OnHTTP && (w.Path == "/" || strings.HasPrefix(w.Path, "/api/")) {
		return bad("mqtt.websocket.path %q would hide the HTTP API; use e.g. /mqtt", w.Path)
	}
	return nil
}
