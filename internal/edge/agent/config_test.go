package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadExampleAndEnv(t *testing.T) {
	env := map[string]string{"EDGEWISE_UPLINK_PASSWORD": "pw", "EDGEWISE_UPLINK_CATCH_UP_RATE": "42", "EDGEWISE_MQTT_ADDR": "127.0.0.1:11883"}
	c, err := Load("../../../examples/agent.yaml", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "site-1" || len(c.Rules.Local) != 2 || c.Uplink.CatchUpRate != 42 || c.Uplink.Password != "pw" || c.MQTT.Addr != "127.0.0.1:11883" {
		t.Fatalf("config: %+v", c)
	}
	addr, useTLS, err := c.Uplink.Endpoint()
	if err != nil || addr != "cloud.example.com:8883" || !useTLS {
		t.Fatalf("endpoint %q %v %v", addr, useTLS, err)
	}
	if f := c.forwardRoutes(); len(f) != 1 || f[0].From != "devices/${agent}/#" {
		t.Fatalf("default forward routes: %+v", f)
	}
	c.Uplink.Gateway = true
	if f := c.forwardRoutes(); len(f) != 3 {
		t.Fatalf("gateway forward routes: %+v", f)
	}
}

func TestInvalidConfigsSaySentences(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"mqtt: {allow_anonymous: true}\n", "name"},
		{"name: a/b\nmqtt: {allow_anonymous: true}\n", "name"},
		{"name: s\n", "users"},
		{"name: s\nmqtt: {allow_anonymous: true}\nuplink: {broker: 'http://x'}\n", "scheme"},
		{"name: s\nmqtt: {allow_anonymous: true}\nspool: {fsync: sometimes}\n", "spool.fsync"},
		{"name: s\nmqtt: {allow_anonymous: true}\nspool: {max_bytes: 1000}\n", "max_bytes"},
		{"name: s\nmqtt: {allow_anonymous: true}\nuplink: {cert_file: a.pem}\n", "key_file"},
		{"name: s\nmqtt: {allow_anonymous: true}\nunknown_key: 1\n", "unknown_key"},
		{"name: s\nmqtt: {allow_anonymous: true}\nuplink: {broker: 'tcp://x:1', cert_file: a.pem, key_file: a.key}\n", "tls://"},
	} {
		p := filepath.Join(t.TempDir(), "agent.yaml")
		os.WriteFile(p, []byte(tc.yaml), 0o600)
		_, err := Load(p, func(string) string { return "" })
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v (want an ErrInvalid mentioning %q)", tc.yaml, err, tc.want)
		}
	}
}
