package tsdb

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

const (
	walHeaderSize   = 8       // u32 length + u32 crc32c
	maxRecordSize   = 1 << 28 // larger lengths are treated as corruption
	walSegmentLimit = 64 << 20
	checkpointPfx   = "checkpoint."
)

// wal is the write-ahead log: numbered segment files plus at most one
// checkpoint. Only the writer goroutine appends and cuts; the flusher
// reads and deletes segments that are no longer written.
type wal struct {
	dir  string
	log  *slog.Logger
	f    *os.File
	seq  uint64 // number of the open segment
	size int64
}

func segmentName(seq uint64) string    { return fmt.Sprintf("%08d", seq) }
func checkpointName(seq uint64) string { return checkpointPfx + fmt.Sprintf("%08d", seq) }

// walFiles lists segment numbers (sorted) and the newest checkpoint number
// (ok=false when none); stray temporary files are removed.
func walFiles(dir string) (segs []uint64, cp uint64, hasCP bool, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, 0, false, err
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			_ = os.Remove(filepath.Join(dir, name))
			continue
		}
		if s, ok := strings.CutPrefix(name, checkpointPfx); ok {
			n, err := strconv.ParseUint(s, 10, 64)
			if err == nil && (!hasCP || n > cp) {
				cp, hasCP = n, true
			}
			continue
		}
		if n, err := strconv.ParseUint(name, 10, 64); err == nil {
			segs = append(segs, n)
		}
	}
	slices.Sort(segs)
	return segs, cp, hasCP, nil
}

// openWAL replays the WAL in dir (checkpoint first, then newer segments in
// order) through apply, truncating corrupt or torn tails, and opens a new
// segment for writing.
func openWAL(dir string, log *slog.Logger, apply func([]preparedPoint)) (*wal, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create wal dir: %w", err)
	}
	segs, cp, hasCP, err := walFiles(dir)
	if err != nil {
		return nil, fmt.Errorf("list wal: %w", err)
	}
	w := &wal{dir: dir, log: log}
	if hasCP {
		if err := w.replayFile(filepath.Join(dir, checkpointName(cp)), apply); err != nil {
			return nil, err
		}
	}
	last := cp
	for _, s := range segs {
		if hasCP && s <= cp {
			continue // already covered by the checkpoint; removal was interrupted
		}
		if err := w.replayFile(filepath.Join(dir, segmentName(s)), apply); err != nil {
			return nil, err
		}
		last = max(last, s)
	}
	if len(segs) > 0 {
		last = max(last, segs[len(segs)-1])
	}
	if err := w.openSegment(last + 1); err != nil {
		return nil, err
	}
	return w, nil
}

// replayFile applies every valid record of one file; at the first torn or
// corrupt record the file is truncated there and the rest is dropped.
func (w *wal) replayFile(path string, apply func([]preparedPoint)) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open wal file: %w", err)
	}
	defer f.Close()
	var off int64
	err = readRecords(bufio.NewReaderSize(f, 1<<20), func(payload []byte) error {
		pts, err := decodePoints(payload)
		if err != nil {
			return err
		}
		apply(pts)
		off += walHeaderSize + int64(len(payload))
		return nil
	})
	if err == nil {
		return nil
	}
	st, serr := f.Stat()
	if serr != nil {
		return fmt.Errorf("stat wal file: %w", serr)
	}
	w.log.Warn("tsdb: truncating corrupt WAL tail", "file", path, "offset", off,
		"dropped_bytes", st.Size()-off, "err", err)
	if err := f.Truncate(off); err != nil {
		return fmt.Errorf("truncate wal file: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync wal file: %w", err)
	}
	return nil
}

// readRecords calls fn for every record payload; it returns nil at a clean
// end of input and an error describing the first bad record otherwise.
func readRecords(r io.Reader, fn func([]byte) error) error {
	var hdr [walHeaderSize]byte
	var buf []byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if err == io.EOF {
				return nil
			}
			return fmt.Errorf("%w: torn record header", ErrCorrupt)
		}
		n := binary.LittleEndian.Uint32(hdr[:4])
		sum := binary.LittleEndian.Uint32(hdr[4:])
		if n == 0 || n > maxRecordSize {
			return fmt.Errorf("%w: record length %d", ErrCorrupt, n)
		}
		if cap(buf) >= int(n) || n <= 1<<20 {
			if cap(buf) < int(n) {
				buf = make([]byte, n)
			}
			buf = buf[:n]
			if _, err := io.ReadFull(r, buf); err != nil {
				return fmt.Errorf("%w: torn record", ErrCorrupt)
			}
		} else {
			// A large length may be garbage: grow with the data actually
			// present instead of trusting it for one big allocation.
			b, err := io.ReadAll(io.LimitReader(r, int64(n)))
			if err != nil || len(b) != int(n) {
				return fmt.Errorf("%w: torn record", ErrCorrupt)
			}
			buf = b
		}
		if crc32.Checksum(buf, castagnoli) != sum {
			return fmt.Errorf("%w: record checksum mismatch", ErrCorrupt)
		}
		if err := fn(buf); err != nil {
			return err
		}
	}
}

// appendRecord frames payload as one WAL record.
func appendRecord(dst, payload []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(payload)))
	dst = binary.LittleEndian.AppendUint32(dst, crc32.Checksum(payload, castagnoli))
	return append(dst, payload...)
}

func (w *wal) openSegment(seq uint64) error {
	f, err := os.OpenFile(filepath.Join(w.dir, segmentName(seq)), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("create wal segment: %w", err)
	}
	if err := syncDir(w.dir); err != nil {
		f.Close()
		return err
	}
	w.f, w.seq, w.size = f, seq, 0
	return nil
}

// write appends framed records with one write(2); it rotates afterwards
// when the segment is full.
func (w *wal) write(b []byte) error {
	if _, err := w.f.Write(b); err != nil {
		return fmt.Errorf("write wal: %w", err)
	}
	w.size += int64(len(b))
	if w.size >= walSegmentLimit {
		if _, err := w.cut(); err != nil {
			return err
		}
	}
	return nil
}

func (w *wal) sync() error {
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("sync wal: %w", err)
	}
	return nil
}

// cut syncs and closes the open segment and starts the next one. It
// returns the number of the closed segment: every record written before
// the cut is in a segment <= that number.
func (w *wal) cut() (uint64, error) {
	if err := w.sync(); err != nil {
		return 0, err
	}
	if err := w.f.Close(); err != nil {
		return 0, fmt.Errorf("close wal segment: %w", err)
	}
	closed := w.seq
	return closed, w.openSegment(closed + 1)
}

func (w *wal) close() error {
	if w.f == nil {
		return nil
	}
	err := w.f.Sync()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f = nil
	if err != nil {
		return fmt.Errorf("close wal: %w", err)
	}
	return nil
}

// checkpoint rewrites the WAL up to segment upTo: records of the existing
// checkpoint and of segments <= upTo are filtered through keep, the kept
// points are written to a new checkpoint (temp file, fsync, rename), and
// the covered segments and the old checkpoint are deleted. It runs
// concurrently with writes to newer segments.
func (w *wal) checkpoint(upTo uint64, keep func(*preparedPoint) bool) error {
	segs, cp, hasCP, err := walFiles(w.dir)
	if err != nil {
		return fmt.Errorf("list wal: %w", err)
	}
	var inputs []string
	if hasCP {
		inputs = append(inputs, checkpointName(cp))
	}
	for _, s := range segs {
		if s <= upTo && (!hasCP || s > cp) {
			inputs = append(inputs, segmentName(s))
		}
	}
	tmp := filepath.Join(w.dir, checkpointName(upTo)+".tmp")
	out, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("create checkpoint: %w", err)
	}
	bw := bufio.NewWriterSize(out, 1<<20)
	var rec, payload []byte
	for _, name := range inputs {
		f, err := os.Open(filepath.Join(w.dir, name))
		if err != nil {
			out.Close()
			return fmt.Errorf("open wal file: %w", err)
		}
		// Replay already truncated corrupt tails; a bad record here ends
		// the file the same way replay would.
		_ = readRecords(bufio.NewReaderSize(f, 1<<20), func(b []byte) error {
			pts, err := decodePoints(b)
			if err != nil {
				return err
			}
			kept := pts[:0]
			for i := range pts {
				if keep(&pts[i]) {
					kept = append(kept, pts[i])
				}
			}
			if len(kept) == 0 {
				return nil
			}
			payload = appendPoints(payload[:0], kept)
			rec = appendRecord(rec[:0], payload)
			_, err = bw.Write(rec)
			return err
		})
		f.Close()
	}
	if err := bw.Flush(); err != nil {
		out.Close()
		return fmt.Errorf("write checkpoint: %w", err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return fmt.Errorf("sync checkpoint: %w", err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("close checkpoint: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(w.dir, checkpointName(upTo))); err != nil {
		return fmt.Errorf("rename checkpoint: %w", err)
	}
	if err := syncDir(w.dir); err != nil {
		return err
	}
	var errs []error
	for _, name := range inputs {
		if name == checkpointName(upTo) {
			continue
		}
		if err := os.Remove(filepath.Join(w.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove checkpointed wal files: %w", err)
	}
	return syncDir(w.dir)
}

// walBytes is the total size of the WAL directory's files.
func walBytes(dir string) int64 {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range ents {
		if info, err := e.Info(); err == nil {
			n += info.Size()
		}
	}
	return n
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir for sync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", filepath.Base(dir), err)
	}
	return nil
}
