// Package edge tests `edgewise agent` against `edgewise serve` as users run
// them: both are the built binary in subprocesses, the uplink is MQTT over
// mutual TLS, site devices are paho MQTT clients, and results are read from
// the cloud's HTTP API.
package edge

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "edgewise-edge-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "edgewise")
	build := exec.Command("go", "build", "-o", binPath, "../../cmd/edgewise")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "edge: build edgewise:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not done after %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// freeAddr returns a loopback address with a port that was free a moment
// ago, so a process can be restarted on the same address.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is an edgewise subprocess.
type proc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	logs   *syncBuffer
	exited chan error
	ready  map[string]any // fields of the readiness log line
}

// start runs the binary and waits for a JSON log line whose msg is
// readyMsg.
func start(t *testing.T, name, readyMsg string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(append(os.Environ(), "EDGEWISE_ADMIN_TOKEN="), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, name: name, cmd: cmd, logs: &syncBuffer{}, exited: make(chan error, 1)}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan map[string]any, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.logs.Write([]byte(line + "\n"))
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == readyMsg {
				select {
				case ready <- rec:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
		p.exited <- cmd.Wait()
	}()
	select {
	case p.ready = <-ready:
	case err := <-p.exited:
		t.Fatalf("%s exited before it was ready: %v\n%s", name, err, p.logs.String())
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("%s not ready in 60s:\n%s", name, p.logs.String())
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("%s log (last 6000 bytes):\n%s", name, tail(p.logs.String(), 6000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// stop sends SIGTERM and requires a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exited:
		if err != nil {
			p.t.Fatalf("%s exit after SIGTERM: %v\n%s", p.name, err, tail(p.logs.String(), 4000))
		}
	case <-time.After(60 * time.Second):
		p.t.Fatalf("%s did not stop within 60s of SIGTERM", p.name)
	}
}

// kill sends SIGKILL.
func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// cloud is an `edgewise serve` whose MQTT TLS listener is served by the
// platform CA and requires a client certificate: things log in by the
// certificate attached to them, with the thing's name as client id.
type cloud struct {
	t                      *testing.T
	dir, tlsAddr, mqttAddr string
	httpAddr, token        string
	p                      *proc
}

func newCloud(t *testing.T) *cloud {
	c := &cloud{t: t, dir: t.TempDir(), tlsAddr: freeAddr(t), mqttAddr: freeAddr(t), httpAddr: freeAddr(t)}
	c.start()
	return c
}

func (c *cloud) start() {
	c.t.Helper()
	c.p = start(c.t, "cloud", "edgewise serving", nil, "serve", "--data", c.dir, "--mqtt-addr", c.mqttAddr,
		"--http-addr", c.httpAddr, "--log-format", "json", "--mqtt-tls-addr", c.tlsAddr, "--mqtt-tls-client-auth", "require")
	tok, err := os.ReadFile(filepath.Join(c.dir, "admin.token"))
	if err != nil {
		c.t.Fatal(err)
	}
	c.token = strings.TrimSpace(string(tok))
}

// cli runs an edgewise client command against the cloud and returns its
// combined output and exit code.
func (c *cloud) cli(args ...string) (string, int) {
	c.t.Helper()
	cmd := exec.Command(binPath, append(args, "--server", "http://"+c.httpAddr, "--token", c.token)...)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		c.t.Fatal(err)
	}
	return string(out), 0
}

// must runs a client command that has to succeed and returns its standard
// output.
func (c *cloud) must(args ...string) string {
	c.t.Helper()
	cmd := exec.Command(binPath, append(args, "--server", "http://"+c.httpAddr, "--token", c.token)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		c.t.Fatalf("edgewise %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// identity is a thing's certificate as `edgewise certs create THING --out
// DIR` writes it.
type identity struct {
	thing, certID, dir string
}

func (id identity) CAFile() string   { return filepath.Join(id.dir, "ca.pem") }
func (id identity) CertFile() string { return filepath.Join(id.dir, "cert.pem") }
func (id identity) KeyFile() string  { return filepath.Join(id.dir, "key.pem") }

// thingWithCert creates a thing (with attributes KEY=VALUE) and a
// certificate attached to it, as an operator would with the CLI.
func (c *cloud) thingWithCert(name string, attrs ...string) identity {
	c.t.Helper()
	args := []string{"things", "create", name}
	for _, kv := range attrs {
		args = append(args, "--attr", kv)
	}
	c.must(args...)
	id := identity{thing: name, dir: filepath.Join(c.t.TempDir(), name)}
	id.certID = strings.TrimSpace(c.must("certs", "create", name, "--out", id.dir))
	for _, f := range []string{id.CAFile(), id.CertFile(), id.KeyFile()} {
		if _, err := os.Stat(f); err != nil {
			c.t.Fatalf("certs create %s: %v", name, err)
		}
	}
	return id
}

// api performs an authenticated request; out receives the JSON answer.
func (c *cloud) api(method, path string, body any, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(context.Background(), method, "http://"+c.httpAddr+path, rd)
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		return resp.StatusCode, json.Unmarshal(b, out)
	}
	return resp.StatusCode, nil
}

type point struct {
	Time  time.Time `json:"time"`
	Value any       `json:"value"`
}

// telemetry returns the points of one device's field.
func (c *cloud) telemetry(device, field string, since time.Time) ([]point, error) {
	var out struct {
		Series []struct {
			Points []point `json:"points"`
		} `json:"series"`
	}
	q := fmt.Sprintf("/api/v1/things/%s/telemetry?field=%s&start=%s&stop=%s", device, field,
		since.UTC().Format(time.RFC3339Nano), time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano))
	if _, err := c.api("GET", q, nil, &out); err != nil {
		return nil, err
	}
	var pts []point
	for _, s := range out.Series {
		pts = append(pts, s.Points...)
	}
	return pts, nil
}

// edgeAgent is an `edgewise agent` subprocess with a fixed configuration.
type edgeAgent struct {
	t                  *testing.T
	cfgFile, dir       string
	mqttAddr, httpAddr string
	p                  *proc
}

func newAgent(t *testing.T, yaml string) *edgeAgent {
	a := &edgeAgent{t: t, dir: t.TempDir(), mqttAddr: freeAddr(t), httpAddr: freeAddr(t)}
	a.cfgFile = filepath.Join(a.dir, "agent.yaml")
	yaml = strings.NewReplacer("$MQTT", a.mqttAddr, "$HTTP", a.httpAddr, "$DATA", filepath.Join(a.dir, "data")).Replace(yaml)
	if err := os.WriteFile(a.cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	a.start()
	return a
}

func (a *edgeAgent) start() {
	a.t.Helper()
	a.p = start(a.t, "agent", "edgewise agent running", nil, "agent", "--config", a.cfgFile, "--log-format", "json")
}

// stats returns the agent's /api/v1/stats.
func (a *edgeAgent) stats() (map[string]any, error) {
	resp, err := http.Get("http://" + a.httpAddr + "/api/v1/stats")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out map[string]any
	return out, json.NewDecoder(resp.Body).Decode(&out)
}

// num reads a number at a dotted path of a JSON object.
func num(m map[string]any, path string) float64 {
	var v any = m
	for _, k := range strings.Split(path, ".") {
		mm, ok := v.(map[string]any)
		if !ok {
			return -1
		}
		v = mm[k]
	}
	f, ok := v.(float64)
	if !ok {
		return -1
	}
	return f
}
