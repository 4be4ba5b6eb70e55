package shadow

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgewise-iot/edgewise/internal/store"
)

const crashChildEnv = "EDGEWISE_SHADOW_CRASH_CHILD_DB"

// TestCrashChild is the child half of TestFlushedSurvivesKill.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashChildEnv)
	if path == "" {
		t.Skip("helper process for TestFlushedSurvivesKill")
	}
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(ctx, db, Options{FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if _, err := s.UpdateReported(ctx, fmt.Sprintf("dev-%d", i%10), map[string]any{"i": i}, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("flushed\n")
	select {} // the parent kills us
}

// TestFlushedSurvivesKill kills a process with SIGKILL after a flush and
// checks that the flushed state is intact.
func TestFlushedSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process")
	}
	path := filepath.Join(t.TempDir(), "meta.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	flushed := false
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if sc.Text() == "flushed" {
			flushed = true
			break
		}
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if !flushed {
		t.Fatal("child did not report a flush")
	}
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := New(ctx, db, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	for k := range 10 {
		st, err := s.Get(ctx, fmt.Sprintf("dev-%d", k))
		if err != nil {
			t.Fatalf("dev-%d lost after kill -9: %v", k, err)
		}
		if st.Version != 10 || st.Reported["i"] != float64(90+k) {
			t.Errorf("dev-%d after kill -9: %+v", k, st)
		}
	}
}
