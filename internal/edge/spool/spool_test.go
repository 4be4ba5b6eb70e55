package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func open(t *testing.T, o Options) *Spool {
	t.Helper()
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func recs(from, n int) []Record {
	out := make([]Record, n)
	for i := range out {
		out[i] = Record{Topic: fmt.Sprintf("devices/d%d/telemetry", (from+i)%3), Payload: []byte(fmt.Sprintf(`{"n":%d}`, from+i)), QoS: 1}
	}
	return out
}

func readAll(t *testing.T, s *Spool, from uint64) []Record {
	t.Helper()
	r := s.NewReader(from)
	defer r.Close()
	var out []Record
	for {
		got, err := r.Next(7, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			return out
		}
		out = append(out, got...)
	}
}

func checkSeq(t *testing.T, got []Record, first, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("got %d records, want %d", len(got), n)
	}
	for i, r := range got {
		want := fmt.Sprintf(`{"n":%d}`, first+i)
		if string(r.Payload) != want || r.QoS != 1 {
			t.Fatalf("record %d: payload %s qos %d, want %s", i, r.Payload, r.QoS, want)
		}
		if i > 0 && r.Seq != got[i-1].Seq+1 {
			t.Fatalf("record %d: seq %d after %d", i, r.Seq, got[i-1].Seq)
		}
	}
}

func TestAppendReadAckReopen(t *testing.T) {
	dir := t.TempDir()
	s := open(t, Options{Dir: dir, SegmentBytes: 300}) // several segments
	for i := 0; i < 50; i += 5 {
		if err := s.Append(recs(i, 5)); err != nil {
			t.Fatal(err)
		}
	}
	all := readAll(t, s, s.Head())
	checkSeq(t, all, 0, 50)
	if all[0].Time.IsZero() {
		t.Fatal("append did not stamp the enqueue time")
	}
	// Ack out of order: the head moves only over a contiguous prefix.
	for _, r := range all[:20] {
		if r.Seq%2 == 0 {
			s.Ack(r.Seq)
		}
	}
	for _, r := range all[:20] {
		if r.Seq%2 == 1 {
			s.Ack(r.Seq)
		}
	}
	st := s.Stats()
	if st.Queued != 30 || st.Head != all[20].Seq || st.Acked != 20 {
		t.Fatalf("stats after 20 acks: %+v", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, Options{Dir: dir, SegmentBytes: 300})
	if s2.Head() != all[20].Seq {
		t.Fatalf("head after reopen %d, want %d", s2.Head(), all[20].Seq)
	}
	checkSeq(t, readAll(t, s2, s2.Head()), 20, 30)
	// Appends continue the sequence.
	if err := s2.Append(recs(50, 1)); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, s2, s2.Head())
	checkSeq(t, got, 20, 31)
	if got[30].Seq != all[49].Seq+1 {
		t.Fatalf("seq after reopen %d, want %d", got[30].Seq, all[49].Seq+1)
	}
}

func TestTornTailIsTruncated(t *testing.T) {
	dir := t.TempDir()
	s := open(t, Options{Dir: dir})
	if err := s.Append(recs(0, 10)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) != 1 {
		t.Fatalf("segments: %v", segs)
	}
	// A crash in the middle of the next write leaves half a record.
	f, _ := os.OpenFile(segs[0], os.O_WRONLY|os.O_APPEND, 0)
	half := appendRecord(nil, &Record{Seq: 11, Time: time.Now(), Topic: "x", Payload: []byte("torn")})
	f.Write(half[:len(half)-3])
	f.Close()
	s2 := open(t, Options{Dir: dir})
	checkSeq(t, readAll(t, s2, s2.Head()), 0, 10)
	if err := s2.Append(recs(10, 2)); err != nil {
		t.Fatal(err)
	}
	checkSeq(t, readAll(t, s2, s2.Head()), 0, 12)
}

func TestCorruptRecordEndsSegment(t *testing.T) {
	dir := t.TempDir()
	s := open(t, Options{Dir: dir, SegmentBytes: 200})
	for i := 0; i < 20; i += 2 {
		if err := s.Append(recs(i, 2)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) < 3 {
		t.Fatalf("want several segments, got %d", len(segs))
	}
	b, _ := os.ReadFile(segs[0])
	b[len(b)-2] ^= 0xff // damage the last record of the first segment
	os.WriteFile(segs[0], b, 0o600)
	s2 := open(t, Options{Dir: dir, SegmentBytes: 200})
	got := readAll(t, s2, s2.Head())
	if s2.Stats().Corrupt != 1 || len(got) != 19 {
		t.Fatalf("corrupt %d, records %d; want 1 and 19", s2.Stats().Corrupt, len(got))
	}
	// Acknowledging everything readable moves the head over the lost record.
	for _, r := range got {
		s2.Ack(r.Seq)
	}
	if st := s2.Stats(); st.Head != st.Next {
		t.Fatalf("head %d stuck before next %d", st.Head, st.Next)
	}
}

func TestDropOldestWhenFull(t *testing.T) {
	s := open(t, Options{Dir: t.TempDir(), MaxBytes: 2000, SegmentBytes: 400})
	for i := 0; i < 100; i++ {
		if err := s.Append(recs(i, 1)); err != nil {
			t.Fatal(err)
		}
	}
	st := s.Stats()
	if st.Bytes > 2000 || st.DroppedSize == 0 || st.Queued+st.DroppedSize != 100 {
		t.Fatalf("stats: %+v", st)
	}
	got := readAll(t, s, 1)
	checkSeq(t, got, 100-len(got), len(got)) // the newest survive, in order
}

func TestRejectNewWhenFull(t *testing.T) {
	s := open(t, Options{Dir: t.TempDir(), MaxBytes: 1000, SegmentBytes: 400, Policy: RejectNew})
	var n int
	for ; n < 100; n++ {
		if err := s.Append(recs(n, 1)); err != nil {
			if !errors.Is(err, ErrFull) {
				t.Fatal(err)
			}
			break
		}
	}
	if n == 100 || s.Stats().Rejected != 1 {
		t.Fatalf("appended %d, stats %+v", n, s.Stats())
	}
	checkSeq(t, readAll(t, s, 1), 0, n) // nothing accepted was lost
	// Acknowledging makes room again.
	for _, r := range readAll(t, s, 1) {
		s.Ack(r.Seq)
	}
	if err := s.Append(recs(n, 1)); err != nil {
		t.Fatalf("append after acks: %v", err)
	}
}

func TestMaxAgeDropsOldSegments(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	s := open(t, Options{Dir: t.TempDir(), MaxAge: time.Hour, Now: clock})
	for i := 0; i < 10; i++ {
		if err := s.Append(recs(i, 1)); err != nil {
			t.Fatal(err)
		}
		now = now.Add(10 * time.Minute) // rolls a segment every MaxAge/8
	}
	// now is 100 minutes after the first record: the records older than an
	// hour went when the next append expired their segments.
	if err := s.Append(recs(10, 1)); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.DroppedAge < 4 || st.Queued+st.DroppedAge != 11 {
		t.Fatalf("stats: %+v", st)
	}
	got := readAll(t, s, 1)
	checkSeq(t, got, 11-len(got), len(got))
	if age := st.OldestAgeSec; age > 3600 {
		t.Fatalf("oldest age %v s after expiry", age)
	}
}

func TestReaderFollowsAppendsAndSeek(t *testing.T) {
	s := open(t, Options{Dir: t.TempDir(), SegmentBytes: 256})
	r := s.NewReader(1)
	defer r.Close()
	if got, _ := r.Next(10, 0); len(got) != 0 {
		t.Fatal("records from an empty spool")
	}
	ch := s.Notify()
	s.Append(recs(0, 3))
	select {
	case <-ch:
	default:
		t.Fatal("Notify not closed by Append")
	}
	got, _ := r.Next(10, 0)
	checkSeq(t, got, 0, 3)
	s.Append(recs(3, 10))
	got, _ = r.Next(4, 0)
	checkSeq(t, got, 3, 4)
	r.Seek(2) // rewind
	got, _ = r.Next(100, 0)
	checkSeq(t, got, 1, 12)
}

func FuzzReadRecord(f *testing.F) {
	f.Add(appendRecord(nil, &Record{Seq: 1, Time: time.Unix(1, 2), Topic: "devices/a/telemetry", Payload: []byte(`{"t":1}`), QoS: 1, Retain: true}))
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, n, ok, err := ReadRecord(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) || ok {
				t.Fatalf("error %v (ok=%v) does not wrap ErrCorrupt", err, ok)
			}
			return
		}
		if !ok {
			return
		}
		if n > len(b) || r.QoS > 2 {
			t.Fatalf("n=%d of %d, qos %d", n, len(b), r.QoS)
		}
		// A valid record re-encodes to the same bytes.
		if again := appendRecord(nil, &r); string(again) != string(b[:n]) {
			t.Fatalf("re-encoding differs")
		}
	})
}
