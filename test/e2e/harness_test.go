// Package e2e runs the edgewise binary as a user does: it builds it, starts
// `edgewise serve` as a subprocess, and talks to it over MQTT (real
// clients), HTTP and the CLI.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
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
	dir, err := os.MkdirTemp("", "edgewise-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "edgewise")
	build := exec.Command("go", "build", "-o", binPath, "../../cmd/edgewise")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build edgewise:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// requirePeer skips (or, in CI with EDGEWISE_TEST_REQUIRE_PEERS=1, fails)
// when an outside component the test needs is missing.
func requirePeer(t *testing.T, ok bool, what string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("EDGEWISE_TEST_REQUIRE_PEERS") != "" {
		t.Fatalf("%s is required here (EDGEWISE_TEST_REQUIRE_PEERS is set)", what)
	}
	t.Skipf("skipping: %s is not available", what)
}

// eventually polls cond until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = cond(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %s: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// server is one `edgewise serve` subprocess.
type server struct {
	t        *testing.T
	dataDir  string
	mqttAddr string
	httpAddr string
	token    string
	cmd      *exec.Cmd
	logs     *syncBuffer
	exited   chan error
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

// startServer runs `edgewise serve` on dataDir with the given MQTT address
// (HTTP on a random port) and waits until it is serving.
func startServer(t *testing.T, dataDir, mqttAddr string, extra ...string) *server {
	t.Helper()
	args := append([]string{"serve", "--data", dataDir, "--mqtt-addr", mqttAddr, "--http-addr", "127.0.0.1:0", "--log-format", "json"}, extra...)
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(os.Environ(), "EDGEWISE_ADMIN_TOKEN=")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, dataDir: dataDir, cmd: cmd, logs: &syncBuffer{}, exited: make(chan error, 1)}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			s.logs.Write([]byte(line + "\n"))
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "edgewise serving" {
				s.mqttAddr, _ = rec["mqtt"].(string)
				s.httpAddr, _ = rec["http"].(string)
				once.Do(func() { close(ready) })
			}
		}
		io.Copy(io.Discard, stderr)
		s.exited <- cmd.Wait()
	}()
	select {
	case <-ready:
	case err := <-s.exited:
		t.Fatalf("server exited before serving: %v\n%s", err, s.logs.String())
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("server did not start in 30s:\n%s", s.logs.String())
	}
	tok, err := os.ReadFile(filepath.Join(dataDir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	s.token = strings.TrimSpace(string(tok))
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			s.cmd.Process.Kill()
			<-s.exited
		}
		if t.Failed() {
			t.Logf("server log:\n%s", s.logs.String())
		}
	})
	return s
}

// stop sends SIGTERM and requires a clean exit (status 0).
func (s *server) stop() {
	s.t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.exited:
		if err != nil {
			s.t.Fatalf("server exit after SIGTERM: %v\n%s", err, s.logs.String())
		}
		if !strings.Contains(s.logs.String(), "stopped cleanly") {
			s.t.Fatalf("server did not report a clean stop:\n%s", s.logs.String())
		}
	case <-time.After(30 * time.Second):
		s.t.Fatalf("server did not stop within 30s of SIGTERM")
	}
}

// kill sends SIGKILL: no flush, no goodbye.
func (s *server) kill() {
	s.t.Helper()
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
}

func (s *server) url(path string) string { return "http://" + s.httpAddr + path }

// api performs an authenticated request and decodes a JSON answer into out.
func (s *server) api(method, path string, body io.Reader, out any) (int, error) {
	req, err := http.NewRequestWithContext(context.Background(), method, s.url(path), body)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode %s: %w", b, err)
		}
	}
	return resp.StatusCode, nil
}

// cli runs the edgewise CLI against s and returns stdout, stderr, exit code.
func (s *server) cli(args ...string) (string, string, int) {
	s.t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(os.Environ(), "EDGEWISE_SERVER=http://"+s.httpAddr, "EDGEWISE_TOKEN=", "EDGEWISE_DATA="+s.dataDir)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		s.t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// createThing creates a thing with the CLI and returns its password.
func (s *server) createThing(name string, extra ...string) string {
	s.t.Helper()
	out, errOut, code := s.cli(append([]string{"things", "create", name, "--json"}, extra...)...)
	if code != 0 {
		s.t.Fatalf("things create %s: exit %d: %s", name, code, errOut)
	}
	var res struct {
		Credentials struct{ Username, Password string } `json:"credentials"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Credentials.Password == "" {
		s.t.Fatalf("things create output %q: %v", out, err)
	}
	return res.Credentials.Password
}

type telemetryResp struct {
	Series []struct {
		Field  string `json:"field"`
		Points []struct {
			Time  time.Time `json:"time"`
			Value any       `json:"value"`
		} `json:"points"`
	} `json:"series"`
}

// points returns the raw points of one field of a thing's telemetry.
func (s *server) points(thing, field, query string) (telemetryResp, error) {
	var tr telemetryResp
	code, err := s.api("GET", "/api/v1/things/"+thing+"/telemetry?field="+field+query, nil, &tr)
	if err != nil {
		return tr, err
	}
	if code != 200 {
		return tr, fmt.Errorf("telemetry: HTTP %d", code)
	}
	return tr, nil
}
