package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultsValid(t *testing.T) {
	c, err := Load("", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if c.MQTT.Addr != ":1883" || c.HTTP.Addr != ":8080" || c.DataDir != "./data" {
		t.Fatalf("unexpected defaults: %+v", c)
	}
}

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "edgewise.yaml")
	yml := "data_dir: /var/lib/x\nmqtt:\n  addr: 127.0.0.1:1884\n  connect_timeout: 3s\nstorage:\n  fsync: interval\n"
	if err := os.WriteFile(p, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"EDGEWISE_MQTT_ADDR": "127.0.0.1:1999", "EDGEWISE_ALLOW_ANONYMOUS": "true"}
	c, err := Load(p, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/var/lib/x" || c.MQTT.Addr != "127.0.0.1:1999" || !c.MQTT.AllowAnonymous ||
		c.Storage.Fsync != "interval" || time.Duration(c.MQTT.ConnectTimeout) != 3*time.Second {
		t.Fatalf("precedence wrong: %+v", c)
	}
}

func TestInvalid(t *testing.T) {
	cases := []struct{ name, yaml, env, want string }{
		{"unknown key", "mqtt:\n  adr: x\n", "", "adr"},
		{"bad addr", "mqtt:\n  addr: nocolon\n", "", "mqtt.addr"},
		{"bad fsync", "storage:\n  fsync: sometimes\n", "", "storage.fsync"},
		{"bad rules spool fsync", "rules:\n  spool_fsync: never\n", "", "rules.spool_fsync"},
		{"negative rules spool size", "rules:\n  spool_max_bytes: -1\n", "", "spool_max_bytes"},
		{"bad duration", "mqtt:\n  connect_timeout: soon\n", "", "not a duration"},
		{"bad level", "log:\n  level: loud\n", "", "log.level"},
		{"bad packet size", "mqtt:\n  max_packet_size: 1\n", "", "max_packet_size"},
		{"bad env bool", "", "maybe", "EDGEWISE_ALLOW_ANONYMOUS"},
		{"bad queue policy", "mqtt:\n  queue_policy: drop_all\n", "", "mqtt.queue_policy"},
		{"negative publish rate", "mqtt:\n  publish_rate: -1\n", "", "mqtt.publish_rate"},
		{"bad topic alias maximum", "mqtt:\n  topic_alias_maximum: 70000\n", "", "mqtt.topic_alias_maximum"},
		{"negative backpressure wait", "mqtt:\n  backpressure_wait: -1s\n", "", "mqtt.backpressure_wait"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(p, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(p, func(k string) string {
				if k == "EDGEWISE_ALLOW_ANONYMOUS" {
					return tc.env
				}
				return ""
			})
			if err == nil || !errors.Is(err, ErrInvalid) && tc.name != "bad duration" || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestEmptyFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
}

func TestBrokerSettings(t *testing.T) {
	c := Default()
	if !c.MQTT.Persistence || c.MQTT.QueuePolicy != "drop_oldest" || c.MQTT.TopicAliasMax != 64 || c.MQTT.PublishRate != 0 {
		t.Fatalf("broker defaults %+v", c.MQTT)
	}
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte("mqtt:\n  queue_policy: disconnect\n  publish_rate: 50\n  publish_burst: 10\n  topic_alias_maximum: 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p, func(k string) string {
		if k == "EDGEWISE_MQTT_PERSISTENCE" {
			return "false"
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.MQTT.Persistence || c.MQTT.QueuePolicy != "disconnect" || c.MQTT.PublishRate != 50 || c.MQTT.PublishBurst != 10 || c.MQTT.TopicAliasMax != 0 {
		t.Fatalf("loaded %+v", c.MQTT)
	}
	if _, err := Load("", func(k string) string {
		if k == "EDGEWISE_MQTT_PERSISTENCE" {
			return "perhaps"
		}
		return ""
	}); err == nil || !strings.Contains(err.Error(), "EDGEWISE_MQTT_PERSISTENCE") {
		t.Fatalf("bad env bool: %v", err)
	}
}
