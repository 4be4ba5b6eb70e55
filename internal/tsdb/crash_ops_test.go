package tsdb

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// crashBatch is the number of points per host in one batch of the
// compaction/delete crash writer; batch i covers times i*crashBatch ...
const crashBatch = 200

// TestKill9DuringCompactionAndDelete re-executes the test binary as a
// writer that loops write / flush / compact / delete and announces each
// compaction and delete as it starts and each crash-sensitive step inside
// them (new block written, inputs being removed, tombstones about to be
// collected, tombstone saved, where the writer pauses); the parent kills
// it with SIGKILL at the chosen step.
// After reopening: the store opens, every acknowledged batch is there
// except what an acknowledged delete removed, nothing deleted comes back,
// the delete in flight is all or nothing, and a compaction after the
// restart changes none of it.
func TestKill9DuringCompactionAndDelete(t *testing.T) {
	if dir := os.Getenv("TSDB_CRASH_OPS_DIR"); dir != "" {
		crashOpsWriter(dir)
		return
	}
	if testing.Short() {
		t.Skip("spawns subprocesses")
	}
	for _, c := range []struct {
		killAt string // the step to kill on (the writer pauses there)
		nth    int
	}{
		{"C", 3}, // a compaction starts
		{"compact-written", 2},
		{"compact-removing", 3},
		{"compact-gc", 4},
		{"d", 3}, // a delete starts: its flush
		{"delete-tombstoned", 2},
		{"delete-tombstoned", 5},
	} {
		name := fmt.Sprintf("%s-%d", c.killAt, c.nth)
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(os.Args[0], "-test.run=^TestKill9DuringCompactionAndDelete$")
			cmd.Env = append(os.Environ(), "TSDB_CRASH_OPS_DIR="+dir, "TSDB_CRASH_PAUSE="+c.killAt,
				"TSDB_CRASH_PAUSE_N="+strconv.Itoa(c.nth))
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			written, deleted := -1, map[int]bool{}
			inFlight := -1 // batch whose delete started but was not acknowledged
			seen := 0
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				if len(f) == 1 && f[0] == c.killAt {
					f = append(f, "0") // a step inside the engine
				}
				if len(f) != 2 {
					continue
				}
				n, err := strconv.Atoi(f[1])
				if err != nil {
					continue
				}
				switch f[0] {
				case "W":
					written = n
				case "d":
					inFlight = n
				case "D":
					deleted[n], inFlight = true, -1
				}
				if f[0] == c.killAt {
					if seen++; seen == c.nth {
						break
					}
				}
			}
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			cmd.Wait()
			if written < 0 {
				t.Fatal("the writer acknowledged nothing")
			}
			var tmp int
			filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err == nil && strings.HasSuffix(p, ".tmp") {
					tmp++
				}
				return nil
			})
			t.Logf("killed after %d acknowledged batches, %d acknowledged deletes, delete in flight: %d, %d temporary files left",
				written+1, len(deleted), inFlight, tmp)
			db, err := Open(context.Background(), Options{Dir: dir, Fsync: FsyncNever, FlushInterval: time.Hour, BlockDuration: 1 << 40})
			if err != nil {
				t.Fatalf("reopen refused: %v", err)
			}
			defer db.Close()
			check := func(when string) {
				for _, h := range []string{"a", "b"} {
					res := mustQuery(t, db, Query{Measurement: "m", Tags: []Tag{{"h", h}}})
					per := map[int]int{}
					if len(res) == 1 {
						for _, s := range res[0].Samples {
							if v, _ := s.Value.Int(); v != s.Time {
								t.Fatalf("%s: host %s sample at %d has value %d", when, h, s.Time, v)
							}
							per[int(s.Time/crashBatch)]++
						}
					}
					for i := 0; i <= written; i++ {
						n := per[i]
						switch {
						case h == "a" && deleted[i] && n != 0:
							t.Fatalf("%s: batch %d of host a was deleted but %d samples came back", when, i, n)
						case h == "a" && i == inFlight && n != 0 && n != crashBatch:
							t.Fatalf("%s: the delete in flight of batch %d left %d samples", when, i, n)
						case !(h == "a" && (deleted[i] || i == inFlight)) && n != crashBatch:
							t.Fatalf("%s: batch %d of host %s was acknowledged but %d of %d samples are there", when, i, h, n, crashBatch)
						}
					}
				}
			}
			check("after reopen")
			if _, err := db.Compact(context.Background()); err != nil {
				t.Fatal(err)
			}
			check("after compacting again")
		})
	}
}

// crashOpsWriter writes batch after batch; after every batch it flushes,
// every 4th batch it compacts and every 3rd it deletes host a's batch from
// two batches before, announcing each step ("C n", "d n" before, "W n",
// "D n" after).
func crashOpsWriter(dir string) {
	ctx := context.Background()
	paused := 0
	db, err := Open(ctx, Options{Dir: dir, Fsync: FsyncAlways, FlushInterval: time.Hour, BlockDuration: 1 << 40,
		stage: func(s string) {
			// Announce the step; at the one the parent kills on, hold
			// still long enough to be killed inside it.
			fmt.Println(s)
			if s == os.Getenv("TSDB_CRASH_PAUSE") {
				if paused++; strconv.Itoa(paused) == os.Getenv("TSDB_CRASH_PAUSE_N") {
					time.Sleep(5 * time.Second)
				}
			}
		}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for i := 0; ; i++ {
		var pts []Point
		for _, h := range []string{"a", "b"} {
			for j := 0; j < crashBatch; j++ {
				ts := int64(i*crashBatch + j)
				pts = append(pts, Point{Measurement: "m", Tags: []Tag{{"h", h}}, Time: ts, Fields: []Field{{Key: "v", Value: IntValue(ts)}}})
			}
		}
		if err := db.Write(ctx, pts); err != nil {
			fail(err)
		}
		fmt.Println("W", i)
		if err := db.Flush(ctx); err != nil {
			fail(err)
		}
		if i%4 == 3 {
			fmt.Println("C", i)
			if _, err := db.Compact(ctx); err != nil {
				fail(err)
			}
		}
		if i%3 == 2 {
			d := i - 2
			fmt.Println("d", d)
			if err := db.Delete(ctx, "m", []Matcher{{Key: "h", Op: MatchEqual, Value: "a"}}, int64(d*crashBatch), int64((d+1)*crashBatch)); err != nil {
				fail(err)
			}
			fmt.Println("D", d)
		}
	}
}
