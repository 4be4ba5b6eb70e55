package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func rec(i int) []byte { return fmt.Appendf(nil, "record-%06d", i) }

func appendN(t *testing.T, s *Spool, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if _, err := s.Append(rec(i)); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
}

func readAll(t *testing.T, s *Spool) []Record {
	t.Helper()
	var out []Record
	for {
		rs, err := s.Read(37)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) == 0 {
			return out
		}
		out = append(out, rs...)
	}
}

func wantRecords(t *testing.T, got []Record, from, to int) {
	t.Helper()
	if len(got) != to-from {
		t.Fatalf("got %d records, want %d (%d..%d)", len(got), to-from, from, to-1)
	}
	for i, r := range got {
		if string(r.Data) != string(rec(from+i)) {
			t.Fatalf("record %d = %q, want %q", i, r.Data, rec(from+i))
		}
	}
}

func TestAppendReadAckReopen(t *testing.T) {
	for _, fs := range []Fsync{FsyncAlways, FsyncInterval} {
		t.Run(fs.String(), func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, Options{Fsync: fs, SegmentBytes: 1024})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Append(rec(0)); err != nil {
				t.Fatal(err)
			}
			if rs, _ := s.Read(10); len(rs) != 0 {
				t.Fatalf("uncommitted record readable: %v", rs)
			}
			if err := s.Commit(); err != nil {
				t.Fatal(err)
			}
			appendN(t, s, 1, 299)
			got := readAll(t, s)
			wantRecords(t, got, 0, 300)
			if err := s.Ack(got[99].Seq); err != nil {
				t.Fatal(err)
			}
			segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
			if len(segs) < 2 {
				t.Fatalf("expected several segments, got %d", len(segs))
			}
			// Simulate kill -9: no Close, reopen from the files.
			s2, err := Open(dir, Options{Fsync: fs, SegmentBytes: 1024})
			if err != nil {
				t.Fatal(err)
			}
			wantRecords(t, readAll(t, s2), 100, 300)
			if st := s2.Stats(); st.Pending != 200 {
				t.Fatalf("pending %d, want 200", st.Pending)
			}
			// New records continue the sequence after the recovered ones.
			appendN(t, s2, 300, 10)
			got = readAll(t, s2)
			wantRecords(t, got, 300, 310)
			if got[0].Seq != 301 {
				t.Fatalf("seq after reopen %d, want 301", got[0].Seq)
			}
			if err := s2.Ack(got[len(got)-1].Seq); err != nil {
				t.Fatal(err)
			}
			if st := s2.Stats(); st.Pending != 0 {
				t.Fatalf("pending after full ack %d", st.Pending)
			}
			s.Close()
			if err := s2.Close(); err != nil {
				t.Fatal(err)
			}
			s3, err := Open(dir, Options{Fsync: fs, SegmentBytes: 1024})
			if err != nil {
				t.Fatal(err)
			}
			defer s3.Close()
			if rs := readAll(t, s3); len(rs) != 0 {
				t.Fatalf("acknowledged records came back: %d", len(rs))
			}
			segs, _ = filepath.Glob(filepath.Join(dir, "*.seg"))
			if len(segs) != 0 {
				t.Fatalf("acknowledged segments kept: %v", segs)
			}
			// The sequence never goes back, even with no segment left.
			appendN(t, s3, 0, 1)
			if rs := readAll(t, s3); len(rs) != 1 || rs[0].Seq != 311 {
				t.Fatalf("after empty reopen: %+v", rs)
			}
		})
	}
}

func TestTornTailAndDamage(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{SegmentBytes: 600})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 0, 60)
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) < 3 {
		t.Fatalf("segments %d", len(segs))
	}
	// Cut the last segment in the middle of its last record.
	last := segs[len(segs)-1]
	st, _ := os.Stat(last)
	if err := os.Truncate(last, st.Size()-5); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(dir, Options{SegmentBytes: 600})
	if err != nil {
		t.Fatal(err)
	}
	wantRecords(t, readAll(t, s2), 0, 59)
	s2.Close()

	// Damage a byte of the first segment's third record: the rest of that
	// segment is lost, later segments are read.
	b, _ := os.ReadFile(segs[0])
	b[segHeader+2*(recHeader+len(rec(0)))+recHeader+1] ^= 0xff
	os.WriteFile(segs[0], b, 0o640)
	s3, err := Open(dir, Options{SegmentBytes: 600})
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	got := readAll(t, s3)
	if st := s3.Stats(); st.Lost == 0 {
		t.Fatalf("damage not counted: %+v", st)
	}
	wantRecords(t, got[:2], 0, 2)
	if string(got[len(got)-1].Data) != string(rec(58)) {
		t.Fatalf("later segments not read: last %q", got[len(got)-1].Data)
	}
	// Appending after recovery never reuses sequence numbers.
	appendN(t, s3, 100, 1)
	rs := readAll(t, s3)
	if len(rs) != 1 || rs[0].Seq != 60 {
		t.Fatalf("after recovery: %+v", rs)
	}
}

func TestFullDropsNewest(t *testing.T) {
	s, err := Open(t.TempDir(), Options{MaxBytes: 4096, SegmentBytes: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n := 0
	for ; ; n++ {
		if _, err := s.Append(rec(n)); err != nil {
			if !errors.Is(err, ErrFull) {
				t.Fatal(err)
			}
			break
		}
		if err := s.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if n < 100 || n > 200 {
		t.Fatalf("%d records fit in 4 KiB", n)
	}
	got := readAll(t, s)
	wantRecords(t, got, 0, n)
	// Acknowledging frees whole segments, and appends work again.
	if err := s.Ack(got[n-1].Seq); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(rec(n)); err != nil {
		t.Fatalf("after ack: %v", err)
	}
}

func TestConcurrentGroupCommit(t *testing.T) {
	s, err := Open(t.TempDir(), Options{SegmentBytes: 8192})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var wg sync.WaitGroup
	const writers, each = 4, 200
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if _, err := s.Append(fmt.Appendf(nil, "w%d-%d", w, i)); err != nil {
					t.Error(err)
					return
				}
				if err := s.Commit(); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	seen := map[string]bool{}
	var lastSeq uint64
	for len(seen) < writers*each {
		rs, err := s.Read(100)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Seq != lastSeq+1 {
				t.Fatalf("seq %d after %d", r.Seq, lastSeq)
			}
			lastSeq = r.Seq
			seen[string(r.Data)] = true
		}
		if len(rs) == 0 {
			<-s.Notify()
		} else if err := s.Ack(lastSeq); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
}

func FuzzOpen(f *testing.F) {
	dir := f.TempDir()
	s, _ := Open(dir, Options{})
	s.Append([]byte("hello"), []byte("world"))
	s.Commit()
	s.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	b, _ := os.ReadFile(segs[0])
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		d := t.TempDir()
		os.WriteFile(filepath.Join(d, fmt.Sprintf("%020d.seg", 1)), data, 0o640)
		s, err := Open(d, Options{})
		if err != nil {
			return
		}
		defer s.Close()
		for {
			rs, err := s.Read(10)
			if err != nil || len(rs) == 0 {
				break
			}
		}
	})
}
