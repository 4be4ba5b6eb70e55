package tsdb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"
)

func openTest(t testing.TB, dir string, mod func(*Options)) *DB {
	t.Helper()
	opts := Options{Dir: dir, Fsync: FsyncNever, FlushInterval: time.Hour}
	if mod != nil {
		mod(&opts)
	}
	db, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func mustWrite(t testing.TB, db *DB, pts ...Point) {
	t.Helper()
	if err := db.Write(context.Background(), pts); err != nil {
		t.Fatal(err)
	}
}

func mustQuery(t testing.TB, db *DB, q Query) []Series {
	t.Helper()
	res, err := db.Query(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func pt(dev string, t int64, fields ...Field) Point {
	return Point{Measurement: "telemetry", Tags: []Tag{{"device_id", dev}}, Fields: fields, Time: t}
}

func f(k string, v Value) Field { return Field{Key: k, Value: v} }

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition never held: %s", msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWriteQueryRoundTrip(t *testing.T) {
	db := openTest(t, t.TempDir(), nil)
	mustWrite(t, db,
		Point{Measurement: "telemetry", Tags: []Tag{{"site", "a"}, {"device_id", "d1"}}, Time: 10,
			Fields: []Field{f("temp", FloatValue(21.5)), f("n", IntValue(-3)), f("u", UintValue(7)), f("ok", BoolValue(true)), f("s", StringValue("hi"))}},
		Point{Measurement: "telemetry", Tags: []Tag{{"device_id", "d0"}}, Time: 5, Fields: []Field{f("temp", FloatValue(1))}},
		Point{Measurement: "other", Time: 5, Fields: []Field{f("temp", FloatValue(1))}},
	)
	res := mustQuery(t, db, Query{Measurement: "telemetry"})
	var got []string
	for _, s := range res {
		got = append(got, fmt.Sprintf("%v %s %v", s.Tags, s.Field, s.Samples))
	}
	want := []string{
		"[{device_id d0}] temp [{5 1}]",
		"[{device_id d1} {site a}] n [{10 -3}]",
		"[{device_id d1} {site a}] ok [{10 true}]",
		"[{device_id d1} {site a}] s [{10 hi}]",
		"[{device_id d1} {site a}] temp [{10 21.5}]",
		"[{device_id d1} {site a}] u [{10 7}]",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%v\nwant\n%v", got, want)
	}
	// Tag matchers, including "missing tag = empty value".
	cases := []struct {
		name string
		tags []Tag
		want int
	}{
		{"device", []Tag{{"device_id", "d1"}}, 5},
		{"site", []Tag{{"site", "a"}}, 5},
		{"noSite", []Tag{{"site", ""}}, 1},
		{"none", []Tag{{"device_id", "zz"}}, 0},
		{"both", []Tag{{"device_id", "d1"}, {"site", "a"}}, 5},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if n := len(mustQuery(t, db, Query{Measurement: "telemetry", Tags: c.tags})); n != c.want {
				t.Fatalf("got %d series, want %d", n, c.want)
			}
		})
	}
}

func TestWriteValidation(t *testing.T) {
	db := openTest(t, t.TempDir(), nil)
	good := pt("d", 1, f("v", FloatValue(1)))
	cases := []struct {
		name string
		p    Point
		err  error
	}{
		{"noMeasurement", Point{Fields: []Field{f("v", FloatValue(1))}}, ErrInvalidPoint},
		{"noFields", Point{Measurement: "m"}, ErrInvalidPoint},
		{"emptyFieldKey", Point{Measurement: "m", Fields: []Field{f("", FloatValue(1))}}, ErrInvalidPoint},
		{"dupTag", Point{Measurement: "m", Tags: []Tag{{"a", "1"}, {"a", "2"}}, Fields: []Field{f("v", FloatValue(1))}}, ErrInvalidPoint},
		{"dupField", Point{Measurement: "m", Fields: []Field{f("v", FloatValue(1)), f("v", FloatValue(2))}}, ErrInvalidPoint},
		{"nan", Point{Measurement: "m", Fields: []Field{f("v", FloatValue(nan()))}}, ErrInvalidPoint},
		{"zeroValue", Point{Measurement: "m", Fields: []Field{{Key: "v"}}}, ErrInvalidPoint},
		{"typeConflict", pt("d", 2, f("v", IntValue(1))), ErrFieldTypeConflict},
	}
	mustWrite(t, db, good)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := db.Write(context.Background(), []Point{good, c.p})
			if !errors.Is(err, c.err) {
				t.Fatalf("got %v, want %v", err, c.err)
			}
			if want := "point 1"; err == nil || !contains(err.Error(), want) {
				t.Fatalf("error %q does not name the point", err)
			}
		})
	}
	// Nothing of the rejected batches was stored.
	if n := db.Stats().SamplesWritten; n != 1 {
		t.Fatalf("samples written %d, want 1", n)
	}
	// A conflict inside one batch is caught too.
	err := db.Write(context.Background(), []Point{pt("new", 1, f("x", IntValue(1))), pt("new", 2, f("x", FloatValue(1)))})
	if !errors.Is(err, ErrFieldTypeConflict) {
		t.Fatalf("in-batch conflict: %v", err)
	}
}

func nan() float64 { var z float64; return z / z }

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestOutOfOrderAndDuplicates(t *testing.T) {
	for _, flush := range []bool{false, true} {
		t.Run(fmt.Sprintf("flush=%v", flush), func(t *testing.T) {
			db := openTest(t, t.TempDir(), nil)
			mustWrite(t, db, pt("d", 30, f("v", IntValue(3))), pt("d", 10, f("v", IntValue(1))))
			mustWrite(t, db, pt("d", 20, f("v", IntValue(2))), pt("d", 10, f("v", IntValue(100))))
			if flush {
				if err := db.Flush(context.Background()); err != nil {
					t.Fatal(err)
				}
				// Late overwrite after the block exists: head wins.
				mustWrite(t, db, pt("d", 20, f("v", IntValue(200))))
			}
			res := mustQuery(t, db, Query{Measurement: "telemetry"})
			want := []Sample{{10, IntValue(100)}, {20, IntValue(2)}, {30, IntValue(3)}}
			if flush {
				want[1].Value = IntValue(200)
			}
			if len(res) != 1 || !deepEqual(res[0].Samples, want) {
				t.Fatalf("got %v want %v", res, want)
			}
			if flush {
				// A second block for the same partition wins over the first.
				if err := db.Flush(context.Background()); err != nil {
					t.Fatal(err)
				}
				res = mustQuery(t, db, Query{Measurement: "telemetry"})
				if !deepEqual(res[0].Samples, want) {
					t.Fatalf("after second flush got %v want %v", res[0].Samples, want)
				}
				if st := db.Stats(); st.Blocks != 2 || st.HeadSamples != 0 {
					t.Fatalf("stats %+v", st)
				}
			}
		})
	}
}

func TestAggregateWindow(t *testing.T) {
	const s = int64(time.Second)
	// Samples at 1s..9s (values 1..9) and 25s (value 25).
	var pts []Point
	for i := int64(1); i <= 9; i++ {
		pts = append(pts, pt("d", i*s, f("v", IntValue(i)), f("x", FloatValue(float64(i)/2)), f("b", BoolValue(i%2 == 0))))
	}
	pts = append(pts, pt("d", 25*s, f("v", IntValue(25)), f("x", FloatValue(12.5)), f("b", BoolValue(true))))
	cases := []struct {
		name  string
		q     Query
		want  []Sample
		isErr bool
	}{
		{"sumInt", Query{Field: "v", Every: 5 * time.Second, Fn: Sum}, []Sample{{5 * s, IntValue(10)}, {10 * s, IntValue(35)}, {30 * s, IntValue(25)}}, false},
		{"countInt", Query{Field: "v", Every: 5 * time.Second, Fn: Count}, []Sample{{5 * s, IntValue(4)}, {10 * s, IntValue(5)}, {30 * s, IntValue(1)}}, false},
		{"meanInt", Query{Field: "v", Every: 5 * time.Second, Fn: Mean}, []Sample{{5 * s, FloatValue(2.5)}, {10 * s, FloatValue(7)}, {30 * s, FloatValue(25)}}, false},
		{"minMax", Query{Field: "v", Every: 10 * time.Second, Fn: Max}, []Sample{{10 * s, IntValue(9)}, {30 * s, IntValue(25)}}, false},
		{"min", Query{Field: "v", Every: 10 * time.Second, Fn: Min}, []Sample{{10 * s, IntValue(1)}, {30 * s, IntValue(25)}}, false},
		{"firstLast", Query{Field: "v", Every: 10 * time.Second, Fn: Last}, []Sample{{10 * s, IntValue(9)}, {30 * s, IntValue(25)}}, false},
		{"first", Query{Field: "v", Every: 10 * time.Second, Fn: First}, []Sample{{10 * s, IntValue(1)}, {30 * s, IntValue(25)}}, false},
		{"sumFloat", Query{Field: "x", Every: 5 * time.Second, Fn: Sum}, []Sample{{5 * s, FloatValue(5)}, {10 * s, FloatValue(17.5)}, {30 * s, FloatValue(12.5)}}, false},
		{"clipEnd", Query{Field: "v", Every: 5 * time.Second, Fn: Sum, Start: 2 * s, End: 7 * s}, []Sample{{5 * s, IntValue(9)}, {7 * s, IntValue(11)}}, false},
		{"startMidWindow", Query{Field: "v", Every: 10 * time.Second, Fn: Count, Start: 8 * s}, []Sample{{10 * s, IntValue(2)}, {30 * s, IntValue(1)}}, false},
		{"limit", Query{Field: "v", Every: 5 * time.Second, Fn: Sum, Limit: 1}, []Sample{{5 * s, IntValue(10)}}, false},
		{"boolCount", Query{Field: "b", Every: 10 * time.Second, Fn: Count}, []Sample{{10 * s, IntValue(9)}, {30 * s, IntValue(1)}}, false},
		{"boolLast", Query{Field: "b", Every: 10 * time.Second, Fn: Last}, []Sample{{10 * s, BoolValue(false)}, {30 * s, BoolValue(true)}}, false},
		{"boolMean", Query{Field: "b", Every: 10 * time.Second, Fn: Mean}, nil, true},
		{"noFn", Query{Field: "v", Every: time.Second}, nil, true},
		{"badFn", Query{Field: "v", Every: time.Second, Fn: "median"}, nil, true},
		{"fnNoEvery", Query{Field: "v", Fn: Sum}, nil, true},
	}
	// The same answers from the head, from blocks (chunk summaries) and
	// from blocks plus an overlapping head.
	for _, mode := range []string{"head", "blocks", "mixed"} {
		db := openTest(t, t.TempDir(), nil)
		mustWrite(t, db, pts...)
		switch mode {
		case "blocks":
			if err := db.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
		case "mixed":
			if err := db.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			mustWrite(t, db, pts[3:5]...) // rewrite the same values into the head
		}
		for _, c := range cases {
			t.Run(mode+"/"+c.name, func(t *testing.T) {
				q := c.q
				q.Measurement = "telemetry"
				res, err := db.Query(context.Background(), q)
				if c.isErr {
					if !errors.Is(err, ErrInvalidQuery) {
						t.Fatalf("got %v, want ErrInvalidQuery", err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if len(res) != 1 || !deepEqual(res[0].Samples, c.want) {
					t.Fatalf("got %v want %v", res, c.want)
				}
			})
		}
	}
}

func TestNegativeTimeWindows(t *testing.T) {
	db := openTest(t, t.TempDir(), nil)
	mustWrite(t, db, pt("d", -15, f("v", IntValue(1))), pt("d", -5, f("v", IntValue(2))), pt("d", 5, f("v", IntValue(3))))
	res := mustQuery(t, db, Query{Measurement: "telemetry", Start: -100, Every: 10, Fn: Count})
	want := []Sample{{-10, IntValue(1)}, {0, IntValue(1)}, {10, IntValue(1)}}
	if !deepEqual(res[0].Samples, want) {
		t.Fatalf("got %v want %v", res[0].Samples, want)
	}
}

func TestFlushAndRestart(t *testing.T) {
	dir := t.TempDir()
	hour := int64(time.Hour)
	db := openTest(t, dir, nil)
	var pts []Point
	for i := int64(0); i < 5000; i++ {
		pts = append(pts, pt(fmt.Sprint("d", i%7), i*int64(10*time.Second), f("v", FloatValue(float64(i%100)/10)), f("n", IntValue(i))))
	}
	mustWrite(t, db, pts...)
	before := mustQuery(t, db, Query{Measurement: "telemetry"})
	if err := db.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := db.Stats()
	if st.HeadSamples != 0 || st.Blocks == 0 || st.BlockSamples != 10000 {
		t.Fatalf("stats after flush: %+v", st)
	}
	// Late and new data after the flush stay in the head/WAL.
	mustWrite(t, db, pt("d0", 100*hour, f("v", FloatValue(-1))), pt("late", 1, f("v", FloatValue(5))))
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if err := db.Write(context.Background(), pts[:1]); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	db2 := openTest(t, dir, nil)
	after := mustQuery(t, db2, Query{Measurement: "telemetry", Tags: []Tag{{"device_id", "d0"}}, Field: "v", Start: 100 * hour})
	if len(after) != 1 || len(after[0].Samples) != 1 || !after[0].Samples[0].Value.Equal(FloatValue(-1)) {
		t.Fatalf("head data lost: %v", after)
	}
	all := mustQuery(t, db2, Query{Measurement: "telemetry", End: 100 * hour})
	late := mustQuery(t, db2, Query{Measurement: "telemetry", Tags: []Tag{{"device_id", "late"}}})
	if len(late) != 1 {
		t.Fatalf("late point lost")
	}
	var trimmed []Series
	for _, s := range all {
		if s.Tags[0].Value != "late" {
			trimmed = append(trimmed, s)
		}
	}
	if !deepEqual(trimmed, before) {
		t.Fatalf("data differs after restart")
	}
}

func TestCrashRecoveryCopyWithoutClose(t *testing.T) {
	for _, policy := range []FsyncPolicy{FsyncAlways, FsyncInterval, FsyncNever} {
		t.Run(string(policy), func(t *testing.T) {
			dir := t.TempDir()
			db := openTest(t, dir, func(o *Options) { o.Fsync = policy })
			for i := 0; i < 50; i++ {
				mustWrite(t, db, pt("d", int64(i), f("v", IntValue(int64(i)))))
			}
			// Copy the directory while the DB is open (as after kill -9:
			// what write(2) put in the page cache is in the files).
			crash := t.TempDir()
			copyDir(t, dir, crash)
			db2 := openTest(t, crash, nil)
			res := mustQuery(t, db2, Query{Measurement: "telemetry"})
			if len(res) != 1 || len(res[0].Samples) != 50 {
				t.Fatalf("recovered %v", res)
			}
		})
	}
}

func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if info.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func walSegments(t testing.TB, dir string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "wal", "0*"))
	return m
}

func TestCorruptWALTail(t *testing.T) {
	cases := []struct {
		name   string
		damage func(b []byte) []byte
		want   int // samples recovered of 10
	}{
		{"truncatedRecord", func(b []byte) []byte { return b[:len(b)-3] }, 9},
		{"truncatedHeader", func(b []byte) []byte { return append(b, 1, 2, 3) }, 10},
		{"flippedByte", func(b []byte) []byte { b[len(b)-2] ^= 0xff; return b }, 9},
		{"garbageTail", func(b []byte) []byte { return append(b, make([]byte, 100)...) }, 10},
		{"hugeLength", func(b []byte) []byte { return append(b, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0) }, 10},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			db := openTest(t, dir, nil)
			for i := 0; i < 10; i++ {
				mustWrite(t, db, pt("d", int64(i), f("v", IntValue(int64(i)))))
			}
			db.Close()
			segs := walSegments(t, dir)
			var last string
			for _, s := range segs {
				if st, _ := os.Stat(s); st.Size() > 0 {
					last = s
				}
			}
			b, err := os.ReadFile(last)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(last, c.damage(b), 0o644); err != nil {
				t.Fatal(err)
			}
			db2 := openTest(t, dir, nil)
			res := mustQuery(t, db2, Query{Measurement: "telemetry"})
			if len(res) != 1 || len(res[0].Samples) != c.want {
				t.Fatalf("recovered %v", res)
			}
			// Writes after recovery survive another restart.
			mustWrite(t, db2, pt("d", 100, f("v", IntValue(100))))
			db2.Close()
			db3 := openTest(t, dir, nil)
			res = mustQuery(t, db3, Query{Measurement: "telemetry"})
			if len(res[0].Samples) != c.want+1 {
				t.Fatalf("after second restart: %d samples", len(res[0].Samples))
			}
		})
	}
}

func TestBackgroundFlushPolicy(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir, func(o *Options) {
		o.BlockDuration = time.Hour
		o.FlushInterval = 10 * time.Millisecond
	})
	hour := int64(time.Hour)
	mustWrite(t, db, pt("d", 10, f("v", IntValue(1))), pt("d", hour+10, f("v", IntValue(2))))
	// Newest sample is only 10ns into the second partition: nothing due.
	mustWrite(t, db, pt("d", 2*hour+hour/2, f("v", IntValue(3))))
	// Now the first partition ended 1.5h before the newest sample and the
	// second one ended exactly half an hour before it: both are due.
	eventually(t, func() bool { return db.Stats().Blocks == 2 }, "two blocks flushed")
	st := db.Stats()
	if st.HeadSamples != 1 || st.HeadPartitions != 1 {
		t.Fatalf("stats %+v", st)
	}
	// The WAL was checkpointed: only the unflushed sample is replayed.
	db.Close()
	db2 := openTest(t, dir, func(o *Options) { o.BlockDuration = time.Hour })
	if st := db2.Stats(); st.HeadSamples != 1 || st.Blocks != 2 {
		t.Fatalf("after reopen %+v", st)
	}
	res := mustQuery(t, db2, Query{Measurement: "telemetry"})
	if len(res[0].Samples) != 3 {
		t.Fatalf("got %v", res)
	}
}

func TestConcurrentWriteQuery(t *testing.T) {
	db := openTest(t, t.TempDir(), func(o *Options) {
		o.Fsync = FsyncAlways
		o.BlockDuration = time.Minute
		o.FlushInterval = 5 * time.Millisecond
	})
	const writers, perWriter = 4, 200
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				p := pt(fmt.Sprint("w", w), int64(i)*int64(time.Second), f("v", IntValue(int64(i))))
				if err := db.Write(context.Background(), []Point{p}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	stop := make(chan struct{})
	var qwg sync.WaitGroup
	for r := 0; r < 2; r++ {
		qwg.Add(1)
		go func() {
			defer qwg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				res, err := db.Query(context.Background(), Query{Measurement: "telemetry", Every: time.Minute, Fn: Count})
				if err != nil {
					t.Error(err)
					return
				}
				for _, s := range res {
					var n int64
					for _, x := range s.Samples {
						c, _ := x.Value.Int()
						n += c
					}
					if n > perWriter {
						t.Errorf("series %v counted %d > %d", s.Tags, n, perWriter)
					}
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	qwg.Wait()
	if err := db.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	res := mustQuery(t, db, Query{Measurement: "telemetry"})
	if len(res) != writers {
		t.Fatalf("%d series", len(res))
	}
	for _, s := range res {
		if len(s.Samples) != perWriter {
			t.Fatalf("series %v has %d samples", s.Tags, len(s.Samples))
		}
	}
	if st := db.Stats(); st.WriteBatches > writers*perWriter {
		t.Fatalf("batches %d", st.WriteBatches)
	}
}

func TestValueJSON(t *testing.T) {
	cases := []struct {
		v    Value
		want string
	}{
		{FloatValue(1.5), "1.5"}, {IntValue(-2), "-2"}, {UintValue(18446744073709551615), "18446744073709551615"},
		{BoolValue(true), "true"}, {StringValue("a\"b"), `"a\"b"`}, {Value{}, "null"},
	}
	for _, c := range cases {
		b, err := c.v.MarshalJSON()
		if err != nil || string(b) != c.want {
			t.Errorf("%v: got %s %v want %s", c.v, b, err, c.want)
		}
	}
	if f, ok := IntValue(3).Float(); !ok || f != 3 {
		t.Error("int to float conversion")
	}
	if _, ok := StringValue("x").Float(); ok {
		t.Error("string converted to float")
	}
}
