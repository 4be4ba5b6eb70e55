package registry_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgewise-iot/edgewise/internal/registry"
	"github.com/edgewise-iot/edgewise/internal/store"
)

const crashChildEnv = "EDGEWISE_REGISTRY_CRASH_CHILD_DB"

// TestCrashChild is the child half of TestAcknowledgedSurvivesKill: it
// creates things, prints each acknowledged one, and waits to be killed.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashChildEnv)
	if path == "" {
		t.Skip("helper process for TestAcknowledgedSurvivesKill")
	}
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := registry.New(ctx, db, registry.Options{HashCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"dev-a", "dev-b", "dev-c"} {
		_, creds, err := r.CreateThing(ctx, registry.Thing{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(creds)
		os.Stdout.Write(append(b, '\n'))
	}
	os.Stdout.WriteString("done\n")
	select {} // never close the database: the parent kills us
}

// TestAcknowledgedSurvivesKill kills a process with SIGKILL right after it
// acknowledged registry writes and checks that every one of them is there.
func TestAcknowledgedSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process")
	}
	path := filepath.Join(t.TempDir(), "meta.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v=false")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []registry.Credentials
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if line == "done" {
			break
		}
		var c registry.Credentials
		if strings.HasPrefix(line, "{") && json.Unmarshal([]byte(line), &c) == nil {
			acked = append(acked, c)
		}
	}
	_ = cmd.Process.Kill() // fails only if the child already died; acked tells
	_ = cmd.Wait()
	if len(acked) != 3 {
		t.Fatalf("child acknowledged %d things, want 3", len(acked))
	}
	r := openDB(t, path)
	for _, c := range acked {
		if _, err := r.VerifyPassword(context.Background(), c.Username, c.Password); err != nil {
			t.Errorf("acknowledged thing %q lost or unusable after kill -9: %v", c.Username, err)
		}
	}
}
