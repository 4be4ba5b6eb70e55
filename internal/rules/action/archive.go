package action

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"path"
	"sync"
	"time"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob" // file:///dir buckets
	_ "gocloud.dev/blob/s3blob"   // s3://bucket buckets
)

// archiveSink writes gzip NDJSON objects: items are appended to the open
// object, which is written to the bucket once it holds maxBytes of
// uncompressed lines or is maxAge old, and on shutdown. Object keys are
// prefix/YYYY/MM/DD/HH/<rule>-<unix ms>-<seq>.ndjson.gz in UTC of the
// object's first item's arrival.
type archiveSink struct {
	url      string
	prefix   string
	rule     string
	maxBytes int
	maxAge   time.Duration
	now      func() time.Time

	mu      sync.Mutex
	bucket  *blob.Bucket
	buf     bytes.Buffer
	gz      *gzip.Writer
	raw     int       // uncompressed bytes in the open object
	lines   int       // lines in the open object
	opened  time.Time // zero when no object is open
	seq     uint64
	pending [][]byte // sealed objects not written yet (write failures are retried)
	keys    []string
	meta    []objMeta // per pending object
	open_   objMeta   // of the open object

	// Written since the last settled call: items and highest sequence.
	doneN   int
	doneSeq uint64
}

// objMeta counts an object's items and its highest spool sequence.
type objMeta struct {
	lines   int
	lastSeq uint64
}

// maxPending bounds the sealed objects held in memory while the bucket
// fails: beyond it deliver refuses new items (they are retried, and a
// durable action keeps them in its spool).
const maxPending = 2

func (s *archiveSink) settled() (int, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, seq := s.doneN, s.doneSeq
	s.doneN = 0
	return n, seq
}

func (s *archiveSink) flushInterval() time.Duration { return min(time.Second, s.maxAge) }

func (s *archiveSink) open(ctx context.Context) (*blob.Bucket, error) {
	if s.bucket != nil {
		return s.bucket, nil
	}
	b, err := blob.OpenBucket(ctx, s.url)
	if err != nil {
		return nil, fmt.Errorf("archive: open bucket: %w", err)
	}
	s.bucket = b
	return b, nil
}

func (s *archiveSink) deliver(ctx context.Context, batch []*Item) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) >= maxPending {
		if err := s.writePending(ctx); err != nil {
			return err
		}
	}
	for _, it := range batch {
		if s.gz == nil {
			s.buf.Reset()
			s.gz = gzip.NewWriter(&s.buf)
			s.opened = s.now()
		}
		s.gz.Write(it.Body) // writes to a bytes.Buffer cannot fail
		s.gz.Write([]byte{'\n'})
		s.raw += len(it.Body) + 1
		s.lines++
		s.open_.lines++
		s.open_.lastSeq = max(s.open_.lastSeq, it.seq)
		if s.raw >= s.maxBytes {
			s.seal()
		}
	}
	// The items are in the open object now: they count as delivered (and
	// leave a durable action's spool) only once their object is written.
	// Write failures are retried by the next deliver or periodic flush.
	_ = s.writePending(ctx)
	return nil
}

// seal closes the open object and queues it for writing.
func (s *archiveSink) seal() {
	if s.gz == nil {
		return
	}
	s.gz.Close()
	s.seq++
	t := s.opened.UTC()
	key := path.Join(s.prefix, t.Format("2006/01/02/15"), fmt.Sprintf("%s-%d-%06d.ndjson.gz", s.rule, t.UnixMilli(), s.seq))
	s.pending = append(s.pending, bytes.Clone(s.buf.Bytes()))
	s.keys = append(s.keys, key)
	s.meta = append(s.meta, s.open_)
	s.open_ = objMeta{}
	s.gz, s.raw, s.lines, s.opened = nil, 0, 0, time.Time{}
}

func (s *archiveSink) writePending(ctx context.Context) error {
	if len(s.pending) == 0 {
		return nil
	}
	b, err := s.open(ctx)
	if err != nil {
		return err
	}
	for len(s.pending) > 0 {
		err := b.WriteAll(ctx, s.keys[0], s.pending[0], &blob.WriterOptions{
			ContentType:     "application/x-ndjson",
			ContentEncoding: "gzip",
		})
		if err != nil {
			return fmt.Errorf("archive: write %s: %w", s.keys[0], err)
		}
		s.doneN += s.meta[0].lines
		s.doneSeq = max(s.doneSeq, s.meta[0].lastSeq)
		s.pending, s.keys, s.meta = s.pending[1:], s.keys[1:], s.meta[1:]
	}
	return nil
}

// flush seals the open object when it is old enough (or always when final)
// and writes every sealed object.
func (s *archiveSink) flush(ctx context.Context, final bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gz != nil && (final || s.now().Sub(s.opened) >= s.maxAge) {
		s.seal()
	}
	return s.writePending(ctx)
}

func (s *archiveSink) close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if len(s.pending) > 0 {
		err = fmt.Errorf("archive: %d objects could not be written", len(s.pending))
	}
	if s.bucket != nil {
		s.bucket.Close()
		s.bucket = nil
	}
	return err
}
