package device

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

func TestQueuePersistsInOrderAndBounds(t *testing.T) {
	dir := t.TempDir()
	q, err := openQueue(dir, 5, false)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := q.push(message{topic: fmt.Sprintf("t/%d", i), payload: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.push(message{topic: "t/x"}); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("push beyond the bound = %v", err)
	}
	if err := q.pop(); err != nil { // message 0 was sent
		t.Fatal(err)
	}
	q.close()
	// A torn record at the end (crash while appending) is dropped.
	f, err := os.OpenFile(filepath.Join(dir, "queue.log"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{40, 0, 0, 0, 1, 2})
	f.Close()

	q, err = openQueue(dir, 5, false)
	if err != nil {
		t.Fatal(err)
	}
	defer q.close()
	if q.len() != 4 {
		t.Fatalf("reopened queue holds %d, want 4", q.len())
	}
	for i := 1; i <= 4; i++ {
		m, ok := q.peek()
		if !ok || m.topic != fmt.Sprintf("t/%d", i) || string(m.payload) != fmt.Sprint(i) {
			t.Fatalf("message %d = %+v", i, m)
		}
		if err := q.pop(); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := os.Stat(filepath.Join(dir, "queue.log")); st.Size() != 0 {
		t.Errorf("drained queue file is %d bytes", st.Size())
	}
	if err := q.push(message{topic: "again"}); err != nil {
		t.Fatal(err)
	}
}

func TestNewValidates(t *testing.T) {
	for _, cfg := range []Config{{Servers: []string{"mqtt://x"}}, {Thing: "a/b", Servers: []string{"mqtt://x"}}, {Thing: "a"}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

// TestExamplesBuild builds the example programs against the SDK.
func TestExamplesBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go tool")
	}
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(gobin, "build", "-o", os.DevNull, "./examples/sensor", "./examples/actuator", "./examples/gateway")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build examples: %v\n%s", err, out)
	}
}
