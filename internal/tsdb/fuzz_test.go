package tsdb

import (
	"bytes"
	"testing"
)

// FuzzDecodePoints: WAL payloads come from disk and must never panic the
// recovery path.
func FuzzDecodePoints(f *testing.F) {
	p1, _ := prepare(Point{Measurement: "m", Tags: []Tag{{"a", "1"}}, Time: 5,
		Fields: []Field{{"f", FloatValue(1.5)}, {"i", IntValue(-1)}, {"u", UintValue(2)}, {"b", BoolValue(true)}, {"s", StringValue("x")}}})
	f.Add(appendPoints(nil, []preparedPoint{p1, p1}))
	f.Add([]byte{1, 1, 'm', 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		pts, err := decodePoints(b)
		if err != nil {
			return
		}
		again := appendPoints(nil, pts)
		pts2, err := decodePoints(again)
		if err != nil || len(pts2) != len(pts) {
			t.Fatalf("re-decode: %v", err)
		}
		if !bytes.Equal(appendPoints(nil, pts2), again) {
			t.Fatal("re-encode differs")
		}
	})
}

// FuzzReadRecords: arbitrary WAL file contents.
func FuzzReadRecords(f *testing.F) {
	p1, _ := prepare(Point{Measurement: "m", Time: 5, Fields: []Field{{"f", FloatValue(1.5)}}})
	rec := appendRecord(nil, appendPoints(nil, []preparedPoint{p1}))
	f.Add(append(append([]byte{}, rec...), rec...))
	f.Add(rec[:len(rec)-1])
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = readRecords(bytes.NewReader(b), func(p []byte) error {
			_, err := decodePoints(p)
			return err
		})
	})
}

// FuzzBlockIndex: a block index that passed its CRC but is inconsistent
// must be rejected, not crash Open.
func FuzzBlockIndex(f *testing.F) {
	dir := f.TempDir()
	db, err := Open(f.Context(), Options{Dir: dir, Fsync: FsyncNever})
	if err != nil {
		f.Fatal(err)
	}
	_ = db.Write(f.Context(), []Point{
		{Measurement: "m", Tags: []Tag{{"a", "1"}}, Time: 5, Fields: []Field{{"f", FloatValue(1.5)}, {"s", StringValue("x")}}},
		{Measurement: "m", Tags: []Tag{{"a", "1"}}, Time: 6, Fields: []Field{{"f", FloatValue(2.5)}, {"s", StringValue("y")}}},
	})
	_ = db.Flush(f.Context())
	for _, b := range db.blocks {
		idx := make([]byte, 0)
		buf := make([]byte, b.size)
		if _, err := b.f.ReadAt(buf, 0); err == nil {
			// The index sits between the data and the footer.
			idx = buf[len(blockMagic):]
		}
		f.Add(idx, uint64(b.size))
	}
	db.Close()
	f.Fuzz(func(t *testing.T, idx []byte, dataEnd uint64) {
		b, err := parseBlockIndex(idx, dataEnd, newSeriesIndex(), func(*block) {})
		if err != nil {
			return
		}
		for _, bs := range b.series {
			for _, bf := range bs.fields {
				for i := range bf.chunks {
					c := &bf.chunks[i]
					if c.tsOff+c.tsLen > dataEnd || c.valOff+c.valLen > dataEnd {
						t.Fatal("chunk outside data")
					}
				}
			}
		}
	})
}
