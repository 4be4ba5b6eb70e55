package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestListenersFromFileAndEnv(t *testing.T) {
	p := filepath.Join(t.TempDir(), "edgewise.yaml")
	yml := `mqtt:
  max_connections: 50000
  connect_rate: 2000
  sys_interval: 30s
  tls:
    addr: 127.0.0.1:8883
    cert_file: server.crt
    key_file: server.key
    client_auth: optional
    client_ca_file: ca.pem
    max_connections: 100
  websocket:
    on_http: true
    connect_rate: 50
    connect_burst: 10
`
	if err := os.WriteFile(p, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"EDGEWISE_MQTT_WS_ADDR": "127.0.0.1:8083", "EDGEWISE_MQTT_TLS_CLIENT_AUTH": "require"}
	c, err := Load(p, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	m := c.MQTT
	if m.MaxConnections != 50000 || m.ConnectRate != 2000 || time.Duration(m.SysInterval) != 30*time.Second ||
		m.TLS.Addr != "127.0.0.1:8883" || m.TLS.ClientAuth != "require" || m.TLS.MaxConnections != 100 ||
		m.TLS.MinVersion != "1.2" || m.WebSocket.Addr != "127.0.0.1:8083" || !m.WebSocket.OnHTTP ||
		m.WebSocket.Path != "/mqtt" || m.WebSocket.ConnectBurst != 10 {
		t.Fatalf("listeners: %+v", m)
	}
}

func TestListenersInvalid(t *testing.T) {
	for name, mutate := range map[string]func(*Config){
		"tls cert without key": func(c *Config) { c.MQTT.TLS = MQTTTLS{Addr: "127.0.0.1:8883", CertFile: "a"} },
		"pki ca without key":   func(c *Config) { c.PKI.CACertFile = "ca.pem" },
		"bad client auth":      func(c *Config) { c.MQTT.TLS.ClientAuth = "maybe" },
		"bad tls version":      func(c *Config) { c.MQTT.TLS.MinVersion = "1.0" },
		"wss with key only": func(c *Config) {
			c.MQTT.WebSocket = MQTTWebSocket{Addr: ":8083", Path: "/mqtt", TLS: true}
			c.MQTT.TLS.KeyFile = "k"
		},
		"bad ws addr":           func(c *Config) { c.MQTT.WebSocket.Addr = "8083" },
		"ws path hides api":     func(c *Config) { c.MQTT.WebSocket = MQTTWebSocket{OnHTTP: true, Path: "/"} },
		"relative ws path":      func(c *Config) { c.MQTT.WebSocket = MQTTWebSocket{OnHTTP: true, Path: "mqtt"} },
		"negative max conns":    func(c *Config) { c.MQTT.TLS.MaxConnections = -1 },
		"tiny sys interval":     func(c *Config) { c.MQTT.SysInterval = Duration(time.Millisecond) },
		"negative sys interval": func(c *Config) { c.MQTT.SysInterval = -1 },
	} {
		c := Default()
		mutate(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	if _, err := Load("", func(k string) string {
		return map[string]string{"EDGEWISE_MQTT_SYS_INTERVAL": "often"}[k]
	}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad EDGEWISE_MQTT_SYS_INTERVAL: %v", err)
	}
}
