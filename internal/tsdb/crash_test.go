package tsdb

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// TestKill9 re-executes the test binary as a writer that prints the number
// of each acknowledged batch, kills it with SIGKILL mid-stream and checks
// that every acknowledged point is recovered.
func TestKill9(t *testing.T) {
	if dir := os.Getenv("TSDB_CRASH_WRITER_DIR"); dir != "" {
		crashWriter(dir)
		return
	}
	if testing.Short() {
		t.Skip("spawns a subprocess")
	}
	for _, policy := range []FsyncPolicy{FsyncAlways, FsyncNever} {
		t.Run(string(policy), func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(os.Args[0], "-test.run=^TestKill9$")
			cmd.Env = append(os.Environ(), "TSDB_CRASH_WRITER_DIR="+dir, "TSDB_CRASH_POLICY="+string(policy))
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(out)
			acked := -1
			for sc.Scan() {
				n, err := strconv.Atoi(sc.Text())
				if err != nil {
					continue
				}
				acked = n
				if acked >= 300 {
					break
				}
			}
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			cmd.Wait()
			if acked < 0 {
				t.Fatal("writer acknowledged nothing")
			}
			db := openTest(t, dir, nil)
			res := mustQuery(t, db, Query{Measurement: "telemetry"})
			if len(res) != 1 {
				t.Fatalf("got %d series", len(res))
			}
			// Batch i holds 10 points at times i*10..i*10+9.
			if got := len(res[0].Samples); got < (acked+1)*10 {
				t.Fatalf("acknowledged %d batches (%d points) but recovered %d", acked+1, (acked+1)*10, got)
			}
			for i, s := range res[0].Samples {
				if s.Time != int64(i) {
					t.Fatalf("sample %d has time %d", i, s.Time)
				}
			}
		})
	}
}

func crashWriter(dir string) {
	db, err := Open(context.Background(), Options{
		Dir: dir, Fsync: FsyncPolicy(os.Getenv("TSDB_CRASH_POLICY")),
		BlockDuration: 500 * time.Nanosecond, FlushInterval: time.Millisecond,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for i := 0; ; i++ {
		pts := make([]Point, 10)
		for j := range pts {
			t := int64(i*10 + j)
			pts[j] = Point{Measurement: "telemetry", Tags: []Tag{{"device_id", "d"}}, Time: t,
				Fields: []Field{{Key: "v", Value: IntValue(t)}}}
		}
		if err := db.Write(context.Background(), pts); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(i)
	}
}
