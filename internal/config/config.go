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
	Devices Devices `yaml:"devices"`
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
}

// HTTP configures the API listener.
type HTTP struct {
	Addr string `yaml:"addr"`
}

// Storage configures the time-series store.
type Storage struct {
	// Fsync is the WAL policy: always (default), interval or never.
	Fsync         string   `yaml:"fsync"`
	FsyncInterval Duration `yaml:"fsync_interval"`
	BlockDuration Duration `yaml:"block_duration"`
	FlushInterval Duration `yaml:"flush_interval"`
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
		},
		HTTP: HTTP{Addr: ":8080"},
		Storage: Storage{
			Fsync:         "always",
			FsyncInterval: Duration(time.Second),
			BlockDuration: Duration(2 * time.Hour),
			FlushInterval: Duration(time.Minute),
		},
		Ingest:  Ingest{Measurement: "telemetry"},
		Devices: Devices{ShadowMaxBytes: 8192, CommandRetention: Duration(7 * 24 * time.Hour)},
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
	if c.Storage.FsyncInterval <= 0 || c.Storage.BlockDuration < Duration(time.Minute) || c.Storage.FlushInterval <= 0 {
		return bad("storage intervals must be positive and block_duration at least 1m")
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
	return nil
}
