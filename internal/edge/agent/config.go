package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/edgewise-iot/edgewise/internal/config"
	"github.com/edgewise-iot/edgewise/internal/edge/bridge"
	"github.com/edgewise-iot/edgewise/internal/rules"
)

// ErrInvalid is wrapped by every configuration error.
var ErrInvalid = errors.New("invalid agent configuration")

// Config is the agent's configuration (agent.yaml).
type Config struct {
	// Name is the agent's thing name in the cloud (required).
	Name    string     `yaml:"name"`
	DataDir string     `yaml:"data_dir"`
	Log     config.Log `yaml:"log"`
	MQTT    LocalMQTT  `yaml:"mqtt"`
	HTTP    HTTP       `yaml:"http"`
	Rules   Rules      `yaml:"rules"`
	Uplink  Uplink     `yaml:"uplink"`
	Spool   Spool      `yaml:"spool"`
}

// LocalMQTT is the agent's broker for site devices.
type LocalMQTT struct {
	Addr string `yaml:"addr"`
	// AllowAnonymous accepts devices without credentials; otherwise they
	// log in as one of Users.
	AllowAnonymous bool        `yaml:"allow_anonymous"`
	Users          []LocalUser `yaml:"users"`
	MaxPacketSize  int         `yaml:"max_packet_size"`
	MaxInflight    int         `yaml:"max_inflight"`
	MaxQueued      int         `yaml:"max_queued"`
	MaxConnections int         `yaml:"max_connections"`
	// Persistence keeps local persistent sessions and retained messages in
	// DATA/broker (default true).
	Persistence bool `yaml:"persistence"`
}

// LocalUser is a static local device login.
type LocalUser struct {
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

// HTTP is the agent's status listener.
type HTTP struct {
	Addr string `yaml:"addr"`
	// Token, when set, is required as a bearer token on /api/v1/...
	// (EDGEWISE_AGENT_HTTP_TOKEN); /healthz stays open.
	Token string `yaml:"token"`
}

// Rules configures the local rules engine.
type Rules struct {
	// Files are rules files (the server's format) applied at start.
	Files []string `yaml:"files"`
	// Local are rules written in agent.yaml itself, applied at start.
	Local           []rules.Definition `yaml:"local"`
	QueueSize       int                `yaml:"queue_size"`
	ActionQueueSize int                `yaml:"action_queue_size"`
}

// Uplink is the connection to the cloud.
type Uplink struct {
	// Broker is tcp://host:port or tls://host:port (mqtts:// and ssl://
	// are tls://); empty runs the agent without an uplink (messages are
	// spooled until one is configured).
	Broker   string `yaml:"broker"`
	ClientID string `yaml:"client_id"` // default: name
	Username string `yaml:"username"`  // default: name
	// Password (or PasswordFile, or EDGEWISE_UPLINK_PASSWORD) of the
	// agent's thing.
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	// CAFile verifies the cloud's certificate (default: system roots);
	// CertFile/KeyFile are the agent's client certificate for mTLS.
	CAFile             string          `yaml:"ca_file"`
	CertFile           string          `yaml:"cert_file"`
	KeyFile            string          `yaml:"key_file"`
	ServerName         string          `yaml:"server_name"`
	InsecureSkipVerify bool            `yaml:"insecure_skip_verify"`
	KeepAlive          config.Duration `yaml:"keep_alive"`
	SessionExpiry      config.Duration `yaml:"session_expiry"`
	// Gateway also forwards child devices' telemetry and state under their
	// own names (devices/{child}/...) and subscribes to their commands.
	Gateway bool `yaml:"gateway"`
	// Forward replaces the default forward routes; Inbound the default
	// inbound routes (see docs/edge.md).
	Forward     []bridge.Route `yaml:"forward"`
	Inbound     []bridge.Route `yaml:"inbound"`
	CatchUpRate float64        `yaml:"catch_up_rate"` // backlog messages per second, 0 = unlimited
	MaxInflight int            `yaml:"max_inflight"`
	// ReconnectMax bounds the pause between reconnect attempts, which
	// doubles from 500ms (default 30s).
	ReconnectMax config.Duration `yaml:"reconnect_max"`
}

// Spool configures store-and-forward.
type Spool struct {
	MaxBytes      int64           `yaml:"max_bytes"`
	MaxAge        config.Duration `yaml:"max_age"`
	SegmentBytes  int64           `yaml:"segment_bytes"`
	Fsync         string          `yaml:"fsync"` // always, interval, never
	FsyncInterval config.Duration `yaml:"fsync_interval"`
	DropPolicy    string          `yaml:"drop_policy"` // drop_oldest, reject_new
}

// Default is the configuration before the file and the environment.
func Default() Config {
	return Config{
		DataDir: "./agent-data",
		Log:     config.Log{Level: "info", Format: "text"},
		MQTT: LocalMQTT{Addr: ":1883", MaxPacketSize: 256 << 10, MaxInflight: 32, MaxQueued: 1000,
			MaxConnections: 1000, Persistence: true},
		HTTP:  HTTP{Addr: "127.0.0.1:8081"},
		Rules: Rules{QueueSize: 1000, ActionQueueSize: 1000},
		Uplink: Uplink{KeepAlive: config.Duration(30 * time.Second), SessionExpiry: config.Duration(24 * time.Hour),
			CatchUpRate: 500, MaxInflight: 64, ReconnectMax: config.Duration(30 * time.Second)},
		Spool: Spool{MaxBytes: 256 << 20, MaxAge: config.Duration(7 * 24 * time.Hour), Fsync: "always",
			FsyncInterval: config.Duration(time.Second), DropPolicy: "drop_oldest"},
	}
}

// Load reads the defaults, then the YAML file at path (if any), then the
// environment (getenv; os.Getenv when nil), and validates.
func Load(path string, getenv func(string) string) (Config, error) {
	c, err := LoadUnvalidated(path, getenv)
	if err != nil {
		return c, err
	}
	return c, c.Validate()
}

// LoadUnvalidated is Load without Validate, for callers that apply flags
// first.
func LoadUnvalidated(path string, getenv func(string) string) (Config, error) {
	c := Default()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return c, fmt.Errorf("agent: read %s: %w", path, err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
			return c, fmt.Errorf("agent: %s: %w: %v", path, ErrInvalid, err)
		}
	}
	if getenv == nil {
		getenv = os.Getenv
	}
	for k, p := range map[string]*string{
		"EDGEWISE_AGENT_NAME": &c.Name, "EDGEWISE_DATA": &c.DataDir, "EDGEWISE_MQTT_ADDR": &c.MQTT.Addr,
		"EDGEWISE_HTTP_ADDR": &c.HTTP.Addr, "EDGEWISE_LOG_LEVEL": &c.Log.Level, "EDGEWISE_LOG_FORMAT": &c.Log.Format,
		"EDGEWISE_UPLINK_BROKER": &c.Uplink.Broker, "EDGEWISE_UPLINK_USERNAME": &c.Uplink.Username,
		"EDGEWISE_UPLINK_PASSWORD": &c.Uplink.Password, "EDGEWISE_SPOOL_FSYNC": &c.Spool.Fsync,
		"EDGEWISE_AGENT_HTTP_TOKEN": &c.HTTP.Token,
	} {
		if v := getenv(k); v != "" {
			*p = v
		}
	}
	if v := getenv("EDGEWISE_UPLINK_CATCH_UP_RATE"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return c, fmt.Errorf("agent: EDGEWISE_UPLINK_CATCH_UP_RATE=%q: %w: want a number", v, ErrInvalid)
		}
		c.Uplink.CatchUpRate = f
	}
	return c, nil
}

// Validate reports the first invalid setting.
func (c *Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("agent: %s: %w", fmt.Sprintf(format, a...), ErrInvalid)
	}
	if c.Name == "" || strings.ContainsAny(c.Name, "/+#$ ") {
		return bad("name %q must be set (the agent's thing name) and contain no / + # $ or spaces", c.Name)
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
	if c.Log.Format != "text" && c.Log.Format != "json" {
		return bad("log.format %q must be text or json", c.Log.Format)
	}
	if c.MQTT.MaxPacketSize < 64 || c.MQTT.MaxInflight < 1 || c.MQTT.MaxQueued < 0 || c.MQTT.MaxConnections < 0 {
		return bad("mqtt.max_packet_size must be at least 64, max_inflight at least 1, max_queued and max_connections not negative")
	}
	if !c.MQTT.AllowAnonymous && len(c.MQTT.Users) == 0 {
		return bad("mqtt needs users (local device logins) or allow_anonymous: true")
	}
	for i, u := range c.MQTT.Users {
		if u.Username == "" || u.Password == "" {
			return bad("mqtt.users[%d] needs username and password", i)
		}
	}
	if c.Uplink.Broker != "" {
		_, useTLS, err := c.Uplink.Endpoint()
		if err != nil {
			return bad("%v", err)
		}
		if !useTLS && c.Uplink.CertFile != "" {
			return bad("uplink.cert_file is a TLS client certificate: uplink.broker must be tls://HOST:PORT")
		}
	}
	if (c.Uplink.CertFile == "") != (c.Uplink.KeyFile == "") {
		return bad("uplink.cert_file and uplink.key_file go together")
	}
	if c.Uplink.KeepAlive < config.Duration(time.Second) || c.Uplink.SessionExpiry < 0 {
		return bad("uplink.keep_alive must be at least 1s and session_expiry not negative")
	}
	if c.Uplink.ReconnectMax < config.Duration(500*time.Millisecond) {
		return bad("uplink.reconnect_max must be at least 500ms")
	}
	if c.Uplink.CatchUpRate < 0 || c.Uplink.MaxInflight < 1 || c.Uplink.MaxInflight > 65535 {
		return bad("uplink.catch_up_rate must not be negative and max_inflight between 1 and 65535")
	}
	if c.Spool.MaxBytes < 4*int64(c.MQTT.MaxPacketSize) {
		return bad("spool.max_bytes %d must be at least 4 × mqtt.max_packet_size (%d)", c.Spool.MaxBytes, 4*c.MQTT.MaxPacketSize)
	}
	if c.Spool.MaxAge < 0 || c.Spool.SegmentBytes < 0 || c.Spool.FsyncInterval <= 0 {
		return bad("spool.max_age and segment_bytes must not be negative, fsync_interval positive")
	}
	switch c.Spool.Fsync {
	case "always", "interval", "never":
	default:
		return bad("spool.fsync %q must be always, interval or never", c.Spool.Fsync)
	}
	if c.Spool.DropPolicy != "drop_oldest" && c.Spool.DropPolicy != "reject_new" {
		return bad("spool.drop_policy %q must be drop_oldest or reject_new", c.Spool.DropPolicy)
	}
	if c.Rules.QueueSize < 0 || c.Rules.ActionQueueSize < 0 {
		return bad("rules.queue_size and action_queue_size must not be negative")
	}
	return nil
}

// Endpoint splits Broker into host:port and whether it uses TLS.
func (u *Uplink) Endpoint() (addr string, useTLS bool, err error) {
	p, err := url.Parse(u.Broker)
	if err != nil || p.Host == "" {
		return "", false, fmt.Errorf("uplink.broker %q must look like tls://host:8883 or tcp://host:1883", u.Broker)
	}
	switch p.Scheme {
	case "tcp", "mqtt":
	case "tls", "ssl", "mqtts":
		useTLS = true
	default:
		return "", false, fmt.Errorf("uplink.broker scheme %q must be tcp or tls", p.Scheme)
	}
	addr = p.Host
	if p.Port() == "" {
		addr = net.JoinHostPort(p.Hostname(), map[bool]string{true: "8883", false: "1883"}[useTLS])
	}
	return addr, useTLS, nil
}

// forwardRoutes are the configured routes, or the defaults: the agent's own
// namespace unchanged, and in gateway mode the children's telemetry and
// state under their own names.
func (c *Config) forwardRoutes() []bridge.Route {
	if len(c.Uplink.Forward) > 0 {
		return c.Uplink.Forward
	}
	r := []bridge.Route{{From: "devices/${agent}/#"}}
	if c.Uplink.Gateway {
		r = append(r, bridge.Route{From: "devices/+/telemetry"}, bridge.Route{From: "devices/+/state"})
	}
	return r
}

// inboundRoutes are the configured routes, or the defaults: the agent's
// commands, and in gateway mode every child's commands.
func (c *Config) inboundRoutes() []bridge.Route {
	if len(c.Uplink.Inbound) > 0 {
		return c.Uplink.Inbound
	}
	r := []bridge.Route{{From: "devices/${agent}/command"}}
	if c.Uplink.Gateway {
		r = append(r, bridge.Route{From: "devices/+/command"})
	}
	return r
}
