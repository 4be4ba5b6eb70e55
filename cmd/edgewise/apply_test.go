package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgewise-iot/edgewise/internal/app"
	"github.com/edgewise-iot/edgewise/internal/config"
)

// runCLI runs the edgewise command in-process against a server.
func runCLI(t *testing.T, server, token string, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetIn(strings.NewReader(""))
	root.SetArgs(append([]string{"--server", server, "--token", token}, args...))
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// TestApplySeedExample applies examples/fleet.yaml (the seed's Terraform
// example) twice — the second time changes nothing — exports it, then
// removes a thing from the file and prunes it.
func TestApplySeedExample(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.HTTP.Addr, cfg.MQTT.Addr = "127.0.0.1:0", "127.0.0.1:0"
	ctx, stop := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	server, token := "http://"+a.HTTPAddr().String(), a.AdminToken()

	src, err := os.ReadFile("../../examples/fleet.yaml")
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "archive")
	fleet := strings.ReplaceAll(string(src), "file:///var/lib/edgewise/archive", "file://"+archive)
	dir := t.TempDir()
	file := filepath.Join(dir, "fleet.yaml")
	if err := os.WriteFile(file, []byte(fleet), 0o600); err != nil {
		t.Fatal(err)
	}
	certs := filepath.Join(dir, "certs")

	// Without --certs-dir the secrets would be lost: refused before applying.
	out, err := runCLI(t, server, token, "apply", "-f", file, "--auto-approve")
	if err == nil || !strings.Contains(err.Error(), "--certs-dir") {
		t.Fatalf("apply without --certs-dir: %v\n%s", err, out)
	}
	// Without --auto-approve and no terminal: refused.
	if _, err := runCLI(t, server, token, "apply", "-f", file, "--certs-dir", certs); err == nil || !strings.Contains(err.Error(), "--auto-approve") {
		t.Fatalf("apply without a terminal: %v", err)
	}
	out, err = runCLI(t, server, token, "apply", "-f", file, "--dry-run")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"+ thing_type temperature_sensor", "+ group building-1", "+ group lab", "+ policy device-policy",
		"+ thing device-001", "+ certificate device-001", "+ rule telemetry-rule", "Plan: 10 to create, 0 to update, 0 to delete."} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
	out, err = runCLI(t, server, token, "apply", "-f", file, "--auto-approve", "--certs-dir", certs)
	if err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Applied 10 changes") {
		t.Fatalf("apply output:\n%s", out)
	}
	for _, f := range []string{"device-001/cert.pem", "device-001/key.pem", "device-001/ca.pem", "device-001/credentials.json", "device-002/key.pem"} {
		fi, err := os.Stat(filepath.Join(certs, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v", f, err)
		}
	}
	if strings.Contains(out, "PRIVATE KEY") || strings.Contains(out, "password") {
		t.Fatalf("secrets printed:\n%s", out)
	}

	// Second apply: nothing to do.
	out, err = runCLI(t, server, token, "apply", "-f", file, "--auto-approve", "--certs-dir", certs)
	if err != nil || !strings.Contains(out, "No changes") {
		t.Fatalf("second apply: %v\n%s", err, out)
	}
	// The registry has what the file declares.
	out, err = runCLI(t, server, token, "search", "thingGroupNames:building-1 AND attributes.location:lab-*")
	if err != nil || !strings.Contains(out, "device-001") || !strings.Contains(out, "device-002") {
		t.Fatalf("search: %v\n%s", err, out)
	}
	out, err = runCLI(t, server, token, "certs", "list")
	if err != nil || strings.Count(out, "ACTIVE") != 2 {
		t.Fatalf("certs: %v\n%s", err, out)
	}

	// Export, then apply the export: no changes.
	exported := filepath.Join(dir, "exported.yaml")
	if _, err := runCLI(t, server, token, "export", "-o", exported); err != nil {
		t.Fatal(err)
	}
	out, err = runCLI(t, server, token, "apply", "-f", exported, "--dry-run")
	if err != nil || !strings.Contains(out, "No changes") {
		b, _ := os.ReadFile(exported)
		t.Fatalf("apply of the export: %v\n%s\nexport:\n%s", err, out, b)
	}

	// An update: change an attribute and a group's description.
	changed := strings.Replace(fleet, "location: lab-2", "location: lab-3", 1)
	if err := os.WriteFile(file, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = runCLI(t, server, token, "apply", "-f", file, "--dry-run")
	if err != nil || !strings.Contains(out, "~ thing device-002") || !strings.Contains(out, `attributes.location: "lab-2" -> "lab-3"`) {
		t.Fatalf("update plan: %v\n%s", err, out)
	}

	// Remove device-002 from the file: without --prune it stays, with
	// --prune it is deleted.
	i := strings.Index(changed, "  - name: device-002")
	j := strings.Index(changed, "\nrules:")
	pruned := changed[:i] + changed[j+1:]
	if err := os.WriteFile(file, []byte(pruned), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = runCLI(t, server, token, "apply", "-f", file, "--dry-run")
	if err != nil || strings.Contains(out, "- thing") {
		t.Fatalf("plan without prune: %v\n%s", err, out)
	}
	out, err = runCLI(t, server, token, "apply", "-f", file, "--prune", "--auto-approve", "--certs-dir", certs)
	if err != nil || !strings.Contains(out, "- thing device-002") || !strings.Contains(out, "Applied 1 changes") {
		t.Fatalf("prune: %v\n%s", err, out)
	}
	if _, err := runCLI(t, server, token, "things", "get", "device-002"); err == nil {
		t.Fatal("device-002 still exists after prune")
	}
	out, err = runCLI(t, server, token, "apply", "-f", file, "--prune", "--dry-run")
	if err != nil || !strings.Contains(out, "No changes") {
		t.Fatalf("after prune: %v\n%s", err, out)
	}
	// A broken file is a usage error with the reason.
	if err := os.WriteFile(file, []byte("things:\n  - name: a/b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = runCLI(t, server, token, "apply", "-f", file, "--dry-run")
	var ee *exitError
	if err == nil || !strings.Contains(err.Error(), "not allowed") || !asExit(err, &ee) || ee.code != 2 {
		t.Fatalf("bad file: %v", err)
	}
}

func asExit(err error, target **exitError) bool {
	e, ok := err.(*exitError)
	if ok {
		*target = e
	}
	return ok
}
