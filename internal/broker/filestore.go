package broker

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

// Defaults of FileStoreOptions.
const (
	DefaultStoreSyncInterval = 100 * time.Millisecond
	DefaultStoreCompactSize  = 8 << 20
)

// ErrStoreClosed is returned by FileStore.Sync after Close.
var ErrStoreClosed = errors.New("broker: session store closed")

const (
	snapMagic  = "EWSNAP1\n"
	walMagic   = "EWWAL01\n"
	snapName   = "snapshot"
	headerSize = 16 // magic + 8-byte generation
	frameSize  = 8  // 4-byte length + 4-byte CRC-32C of the record body
	maxRecord  = 300 << 20
	opMessage  = RecordOp(0x40) // a message body, written before its first OpEnqueue
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// FileStoreOptions configures a FileStore; the zero value uses the defaults.
type FileStoreOptions struct {
	Logger *slog.Logger
	// SyncInterval bounds how long records that nobody waits for (acks,
	// subscriptions, QoS 0 retained messages) stay unwritten; records a
	// client acknowledgement depends on are written and fsynced at once by
	// group commit (default 100ms).
	SyncInterval time.Duration
	// CompactSize is the log size above which the log is replaced by a
	// snapshot of the live state, once it is also twice the size of the
	// last snapshot (default 8 MiB).
	CompactSize int64
}

// FileStore is a SessionStore in one directory: an append-only log of
// records (wal-N) with group commit, periodically compacted into a snapshot
// of the live state (snapshot) and a fresh log. Each record is framed with
// its length and CRC-32C; a torn tail left by a crash is cut off on open.
type FileStore struct {
	dir      string
	log      *slog.Logger
	interval time.Duration
	compactN int64

	mu       sync.Mutex // guards the fields below
	st       fsState
	pending  []byte // encoded records not yet written
	spare    []byte
	appended uint64
	err      error         // sticky write error
	waitCh   chan struct{} // closed and replaced when durable advances
	closed   bool

	durable atomic.Uint64
	kick    chan struct{}
	done    chan struct{}
	exited  chan struct{}

	// Owned by the flusher goroutine (and Open/Close).
	f        *os.File
	gen      uint64
	logSize  int64
	snapSize int64
}

// fsState is the live state the records describe; snapshots encode it.
type fsState struct {
	sessions map[string]*fsSession
	msgs     map[uint64]*fsMsg
	retained map[string]*StoredMessage
}

type fsSession struct {
	expiry    uint32
	offlineAt time.Time
	subs      map[string]StoredSub
	dels      map[uint64]*StoredDelivery
	inbound   map[uint16]struct{}
}

type fsMsg struct {
	m    *StoredMessage
	refs int
}

// OpenFileStore opens (creating if needed) the store in dir, replays the
// snapshot and the log, and starts the background writer.
func OpenFileStore(dir string, opts FileStoreOptions) (*FileStore, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = DefaultStoreSyncInterval
	}
	if opts.CompactSize <= 0 {
		opts.CompactSize = DefaultStoreCompactSize
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("broker: session store: %w", err)
	}
	fs := &FileStore{dir: dir, log: opts.Logger, interval: opts.SyncInterval, compactN: opts.CompactSize,
		waitCh: make(chan struct{}), kick: make(chan struct{}, 1), done: make(chan struct{}), exited: make(chan struct{})}
	fs.st.init()
	if err := fs.recover(); err != nil {
		return nil, err
	}
	go fs.run()
	return fs, nil
}

func (st *fsState) init() {
	st.sessions = make(map[string]*fsSession)
	st.msgs = make(map[uint64]*fsMsg)
	st.retained = make(map[string]*StoredMessage)
}

func (fs *FileStore) walPath(gen uint64) string {
	return filepath.Join(fs.dir, fmt.Sprintf("wal-%016d", gen))
}

// recover replays the snapshot and the current log and opens the log for
// appending, cutting off a torn tail.
func (fs *FileStore) recover() error {
	snap, err := os.ReadFile(filepath.Join(fs.dir, snapName))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("broker: session store: %w", err)
	default:
		gen, err := checkHeader(snap, snapMagic)
		if err != nil {
			return fmt.Errorf("broker: session store snapshot: %w", err)
		}
		if n, err := fs.replay(snap[headerSize:]); err != nil || n != len(snap)-headerSize {
			return fmt.Errorf("broker: session store snapshot is damaged at byte %d: %v", headerSize+n, err)
		}
		fs.gen, fs.snapSize = gen, int64(len(snap))
	}
	path := fs.walPath(fs.gen)
	wal, err := os.ReadFile(path)
	size := int64(headerSize)
	switch {
	case errors.Is(err, os.ErrNotExist):
		f, err := createWAL(path, fs.gen)
		if err != nil {
			return err
		}
		fs.f = f
	case err != nil:
		return fmt.Errorf("broker: session store: %w", err)
	default:
		if gen, err := checkHeader(wal, walMagic); err != nil || gen != fs.gen {
			return fmt.Errorf("broker: session store log %s has a bad header (generation %d, want %d): %v", path, gen, fs.gen, err)
		}
		n, rerr := fs.replay(wal[headerSize:])
		size += int64(n)
		if size < int64(len(wal)) {
			fs.log.Warn("broker: session store log has a torn tail; truncating", "file", path,
				"offset", size, "dropped_bytes", int64(len(wal))-size, "err", rerr)
			if err := os.Truncate(path, size); err != nil {
				return fmt.Errorf("broker: session store: %w", err)
			}
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("broker: session store: %w", err)
		}
		fs.f = f
	}
	fs.logSize = size
	// Logs of other generations are leftovers of a compaction.
	if ents, err := os.ReadDir(fs.dir); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "wal-") && filepath.Join(fs.dir, e.Name()) != path {
				_ = os.Remove(filepath.Join(fs.dir, e.Name()))
			}
		}
	}
	return nil
}

func checkHeader(b []byte, magic string) (uint64, error) {
	if len(b) < headerSize || string(b[:8]) != magic {
		return 0, errors.New("not a session store file")
	}
	return binary.LittleEndian.Uint64(b[8:16]), nil
}

func createWAL(path string, gen uint64) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("broker: session store: %w", err)
	}
	h := binary.LittleEndian.AppendUint64([]byte(walMagic), gen)
	if _, err := f.Write(h); err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("broker: session store: %w", err)
	}
	return f, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// replay applies the framed records in b and returns the bytes consumed
// (up to the first incomplete or damaged record).
func (fs *FileStore) replay(b []byte) (int, error) {
	off := 0
	for off < len(b) {
		if len(b)-off < frameSize {
			return off, errors.New("truncated frame")
		}
		n := int(binary.LittleEndian.Uint32(b[off:]))
		sum := binary.LittleEndian.Uint32(b[off+4:])
		if n > maxRecord || len(b)-off-frameSize < n {
			return off, errors.New("truncated record")
		}
		body := b[off+frameSize : off+frameSize+n]
		if crc32.Checksum(body, crcTable) != sum {
			return off, errors.New("checksum mismatch")
		}
		r, err := decodeRecord(body, fs.st.msgs)
		if err != nil {
			return off, err
		}
		fs.st.apply(r)
		off += frameSize + n
	}
	return off, nil
}

// Load returns the recovered state.
func (fs *FileStore) Load() (*StoredState, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	out := &StoredState{}
	for _, m := range fs.st.retained {
		out.Retained = append(out.Retained, m)
	}
	for id, s := range fs.st.sessions {
		ss := StoredSession{ClientID: id, Expiry: s.expiry, OfflineAt: s.offlineAt}
		for _, sub := range s.subs {
			ss.Subs = append(ss.Subs, sub)
		}
		slices.SortFunc(ss.Subs, func(a, b StoredSub) int { return cmp.Compare(a.Filter, b.Filter) })
		for _, d := range s.dels {
			ss.Deliveries = append(ss.Deliveries, *d)
		}
		slices.SortFunc(ss.Deliveries, func(a, b StoredDelivery) int { return cmp.Compare(a.Seq, b.Seq) })
		for id := range s.inbound {
			ss.Inbound = append(ss.Inbound, id)
		}
		slices.Sort(ss.Inbound)
		out.Sessions = append(out.Sessions, ss)
	}
	slices.SortFunc(out.Sessions, func(a, b StoredSession) int { return cmp.Compare(a.ClientID, b.ClientID) })
	return out, nil
}

// Append encodes r into the pending log and applies it to the live state.
func (fs *FileStore) Append(r *Record) uint64 {
	fs.mu.Lock()
	if r.Op == OpEnqueue && fs.st.msgs[r.Msg.ID] == nil {
		fs.pending = appendFrame(fs.pending, &Record{Op: opMessage, Msg: r.Msg})
	}
	fs.pending = appendFrame(fs.pending, r)
	fs.st.apply(r)
	fs.appended++
	seq := fs.appended
	fs.mu.Unlock()
	return seq
}

// Durable returns the sequence number of the last durable record.
func (fs *FileStore) Durable() uint64 { return fs.durable.Load() }

// Sync waits until the record seq (and all before it) is on disk.
func (fs *FileStore) Sync(ctx context.Context, seq uint64) error {
	for {
		fs.mu.Lock()
		if fs.durable.Load() >= seq {
			fs.mu.Unlock()
			return nil
		}
		if fs.err != nil || fs.closed {
			err := fs.err
			fs.mu.Unlock()
			if err == nil {
				err = ErrStoreClosed
			}
			return err
		}
		ch := fs.waitCh
		fs.mu.Unlock()
		select {
		case fs.kick <- struct{}{}:
		default:
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("broker: session store sync: %w", ctx.Err())
		}
	}
}

// Close writes what is pending, stops the writer and closes the log.
func (fs *FileStore) Close() error {
	fs.mu.Lock()
	if fs.closed {
		fs.mu.Unlock()
		return nil
	}
	fs.mu.Unlock()
	close(fs.done)
	<-fs.exited
	fs.mu.Lock()
	fs.closed = true
	err := fs.err
	close(fs.waitCh)
	fs.waitCh = make(chan struct{})
	fs.mu.Unlock()
	if cerr := fs.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("broker: session store: %w", cerr)
	}
	return err
}

// run is the writer: it writes and fsyncs pending records when someone
// waits (group commit: whatever accumulated meanwhile goes in the same
// write) or every SyncInterval.
func (fs *FileStore) run() {
	defer close(fs.exited)
	t := time.NewTicker(fs.interval)
	defer t.Stop()
	for {
		select {
		case <-fs.kick:
		case <-t.C:
		case <-fs.done:
			fs.flush()
			return
		}
		fs.flush()
	}
}

func (fs *FileStore) flush() {
	fs.mu.Lock()
	if fs.err != nil {
		fs.mu.Unlock()
		return
	}
	buf, seq := fs.pending, fs.appended
	size := fs.logSize + int64(len(buf))
	compact := size > fs.compactN && size > 2*fs.snapSize
	if len(buf) == 0 && !compact {
		fs.mu.Unlock()
		return
	}
	fs.pending = fs.spare[:0]
	fs.spare = nil
	var snap []byte
	if compact {
		// The snapshot includes buf: it was applied already.
		snap = fs.st.encode(make([]byte, 0, fs.snapSize+int64(len(buf))))
	}
	fs.mu.Unlock()

	var err error
	if compact {
		err = fs.compact(snap)
	} else if _, err = fs.f.Write(buf); err == nil {
		err = fs.f.Sync()
		fs.logSize += int64(len(buf))
	}

	fs.mu.Lock()
	if cap(buf) <= 4<<20 {
		fs.spare = buf[:0]
	}
	if err != nil {
		fs.err = fmt.Errorf("broker: session store write: %w", err)
		fs.log.Error("broker: session store failed; persistent sessions are no longer saved", "err", err)
	} else {
		fs.durable.Store(seq)
	}
	close(fs.waitCh)
	fs.waitCh = make(chan struct{})
	fs.mu.Unlock()
}

// compact writes the snapshot of the next generation, switches to a new
// log and removes the old one. A crash at any point leaves either the old
// snapshot and log or the new snapshot (and possibly its empty log).
func (fs *FileStore) compact(snap []byte) error {
	gen := fs.gen + 1
	tmp := filepath.Join(fs.dir, snapName+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	h := binary.LittleEndian.AppendUint64([]byte(snapMagic), gen)
	_, err = f.Write(h)
	if err == nil {
		_, err = f.Write(snap)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(fs.dir, snapName))
	}
	if err == nil {
		err = syncDir(fs.dir)
	}
	if err != nil {
		return err
	}
	nf, err := createWAL(fs.walPath(gen), gen)
	if err != nil {
		return err
	}
	old := fs.f
	fs.f, fs.gen = nf, gen
	fs.logSize, fs.snapSize = headerSize, int64(len(snap))+headerSize
	old.Close()
	_ = os.Remove(fs.walPath(gen - 1))
	fs.log.Debug("broker: session store compacted", "generation", gen, "snapshot_bytes", fs.snapSize)
	return nil
}

// apply changes the live state by r. Records that refer to unknown
// sessions or deliveries are ignored.
func (st *fsState) apply(r *Record) {
	switch r.Op {
	case opMessage:
		if st.msgs[r.Msg.ID] == nil {
			st.msgs[r.Msg.ID] = &fsMsg{m: r.Msg}
		}
	case OpRetain:
		st.retained[r.Msg.Topic] = r.Msg
	case OpRetainClear:
		delete(st.retained, r.Topic)
	case OpSession:
		s := st.sessions[r.ClientID]
		if s == nil {
			s = &fsSession{}
			st.sessions[r.ClientID] = s
		}
		s.expiry, s.offlineAt = r.Expiry, r.OfflineAt
	case OpSessionGone:
		if s := st.sessions[r.ClientID]; s != nil {
			for _, d := range s.dels {
				st.unref(d.Msg.ID)
			}
			delete(st.sessions, r.ClientID)
		}
	default:
		s := st.sessions[r.ClientID]
		if s == nil {
			return
		}
		switch r.Op {
		case OpSubscribe:
			if s.subs == nil {
				s.subs = make(map[string]StoredSub)
			}
			s.subs[r.Sub.Filter] = r.Sub
		case OpUnsubscribe:
			delete(s.subs, r.Sub.Filter)
		case OpEnqueue:
			m := st.msgs[r.Msg.ID]
			if m == nil {
				m = &fsMsg{m: r.Msg}
				st.msgs[r.Msg.ID] = m
			}
			if s.dels == nil {
				s.dels = make(map[uint64]*StoredDelivery)
			}
			if s.dels[r.Seq] == nil {
				m.refs++
			}
			s.dels[r.Seq] = &StoredDelivery{Seq: r.Seq, Msg: m.m, QoS: r.QoS, Retain: r.Retain, SubIDs: r.SubIDs}
		case OpSent:
			if d := s.dels[r.Seq]; d != nil {
				d.PacketID = r.PacketID
			}
		case OpReleased:
			if d := s.dels[r.Seq]; d != nil {
				d.Released = true
			}
		case OpDone:
			if d := s.dels[r.Seq]; d != nil {
				delete(s.dels, r.Seq)
				st.unref(d.Msg.ID)
			}
		case OpInbound:
			if s.inbound == nil {
				s.inbound = make(map[uint16]struct{})
			}
			s.inbound[r.PacketID] = struct{}{}
		case OpInboundDone:
			delete(s.inbound, r.PacketID)
		}
	}
}

func (st *fsState) unref(id uint64) {
	if m := st.msgs[id]; m != nil {
		if m.refs--; m.refs <= 0 {
			delete(st.msgs, id)
		}
	}
}

// encode writes the records that rebuild st.
func (st *fsState) encode(b []byte) []byte {
	for _, m := range st.retained {
		b = appendFrame(b, &Record{Op: OpRetain, Msg: m})
	}
	for _, m := range st.msgs {
		if m.refs > 0 {
			b = appendFrame(b, &Record{Op: opMessage, Msg: m.m})
		}
	}
	for id, s := range st.sessions {
		b = appendFrame(b, &Record{Op: OpSession, ClientID: id, Expiry: s.expiry, OfflineAt: s.offlineAt})
		for _, sub := range s.subs {
			b = appendFrame(b, &Record{Op: OpSubscribe, ClientID: id, Sub: sub})
		}
		for _, d := range s.dels {
			b = appendFrame(b, &Record{Op: OpEnqueue, ClientID: id, Seq: d.Seq, Msg: d.Msg, QoS: d.QoS, Retain: d.Retain, SubIDs: d.SubIDs})
			if d.PacketID != 0 {
				b = appendFrame(b, &Record{Op: OpSent, ClientID: id, Seq: d.Seq, PacketID: d.PacketID})
			}
			if d.Released {
				b = appendFrame(b, &Record{Op: OpReleased, ClientID: id, Seq: d.Seq})
			}
		}
		for pid := range s.inbound {
			b = appendFrame(b, &Record{Op: OpInbound, ClientID: id, PacketID: pid})
		}
	}
	return b
}

// appendFrame appends r with its length and checksum.
func appendFrame(b []byte, r *Record) []byte {
	start := len(b)
	b = append(b, make([]byte, frameSize)...)
	b = appendRecordBody(b, r)
	body := b[start+frameSize:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(body)))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(body, crcTable))
	return b
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return binary.AppendVarint(b, 0)
	}
	return binary.AppendVarint(b, t.UnixNano())
}

func appendRecordBody(b []byte, r *Record) []byte {
	b = append(b, byte(r.Op))
	switch r.Op {
	case opMessage, OpRetain:
		return appendStoredMessage(b, r.Msg)
	case OpRetainClear:
		return appendStr(b, r.Topic)
	}
	b = appendStr(b, r.ClientID)
	switch r.Op {
	case OpSession:
		b = binary.AppendUvarint(b, uint64(r.Expiry))
		b = appendTime(b, r.OfflineAt)
	case OpSubscribe:
		b = appendStr(b, r.Sub.Filter)
		b = append(b, r.Sub.QoS, boolByte(r.Sub.NoLocal)|boolByte(r.Sub.RetainAsPublished)<<1)
		b = binary.AppendUvarint(b, uint64(r.Sub.SubID))
	case OpUnsubscribe:
		b = appendStr(b, r.Sub.Filter)
	case OpEnqueue:
		b = binary.AppendUvarint(b, r.Seq)
		b = binary.AppendUvarint(b, r.Msg.ID)
		b = append(b, r.QoS, boolByte(r.Retain))
		b = binary.AppendUvarint(b, uint64(len(r.SubIDs)))
		for _, id := range r.SubIDs {
			b = binary.AppendUvarint(b, uint64(id))
		}
	case OpSent:
		b = binary.AppendUvarint(b, r.Seq)
		b = binary.AppendUvarint(b, uint64(r.PacketID))
	case OpReleased, OpDone:
		b = binary.AppendUvarint(b, r.Seq)
	case OpInbound, OpInboundDone:
		b = binary.AppendUvarint(b, uint64(r.PacketID))
	}
	return b
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// appendStoredMessage writes the id, the expiry time and the message as an
// MQTT 5 PUBLISH, so properties use the codec's encoding.
func appendStoredMessage(b []byte, m *StoredMessage) []byte {
	b = binary.AppendUvarint(b, m.ID)
	b = appendTime(b, m.Expiry)
	p := packets.Publish{QoS: m.QoS, Retain: m.Retain, Topic: m.Topic, Payload: m.Payload}
	if m.QoS > 0 {
		p.PacketID = 1
	}
	if m.Properties != nil {
		p.Properties = *m.Properties
	}
	n := packets.PublishSize(packets.V5, &p)
	b = binary.AppendUvarint(b, uint64(n))
	return packets.AppendPublish(b, packets.V5, &p)
}

// recReader decodes record fields, remembering the first error.
type recReader struct {
	b   []byte
	err error
}

func (r *recReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("broker: session store record: bad %s", what)
	}
	r.b = nil
}

func (r *recReader) uvarint(what string) uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *recReader) varint(what string) int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *recReader) bytes(what string) []byte {
	n := r.uvarint(what)
	if r.err != nil || n > uint64(len(r.b)) {
		r.fail(what)
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *recReader) str(what string) string { return string(r.bytes(what)) }

func (r *recReader) u8(what string) byte {
	if len(r.b) == 0 {
		r.fail(what)
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *recReader) time(what string) time.Time {
	if v := r.varint(what); v != 0 {
		return time.Unix(0, v)
	}
	return time.Time{}
}

// decodeRecord decodes a record body; OpEnqueue refers to a message by id
// that msgs must hold.
func decodeRecord(body []byte, msgs map[uint64]*fsMsg) (*Record, error) {
	r := &recReader{b: body}
	rec := &Record{Op: RecordOp(r.u8("op"))}
	switch rec.Op {
	case opMessage, OpRetain:
		rec.Msg = r.message()
	case OpRetainClear:
		rec.Topic = r.str("topic")
	case OpSession, OpSessionGone, OpSubscribe, OpUnsubscribe, OpEnqueue, OpSent, OpReleased, OpDone, OpInbound, OpInboundDone:
		rec.ClientID = r.str("client id")
		switch rec.Op {
		case OpSession:
			rec.Expiry = uint32(r.uvarint("expiry"))
			rec.OfflineAt = r.time("offline time")
		case OpSubscribe:
			rec.Sub.Filter = r.str("filter")
			rec.Sub.QoS = r.u8("qos")
			f := r.u8("flags")
			rec.Sub.NoLocal, rec.Sub.RetainAsPublished = f&1 != 0, f&2 != 0
			rec.Sub.SubID = uint32(r.uvarint("subscription id"))
		case OpUnsubscribe:
			rec.Sub.Filter = r.str("filter")
		case OpEnqueue:
			rec.Seq = r.uvarint("seq")
			id := r.uvarint("message id")
			rec.QoS = r.u8("qos")
			rec.Retain = r.u8("retain") != 0
			n := r.uvarint("subscription ids")
			if n > 1<<16 {
				r.fail("subscription ids")
			}
			for i := uint64(0); i < n && r.err == nil; i++ {
				rec.SubIDs = append(rec.SubIDs, int(r.uvarint("subscription id")))
			}
			if m := msgs[id]; m != nil {
				rec.Msg = m.m
			} else if r.err == nil {
				return nil, fmt.Errorf("broker: session store record: delivery %d of unknown message %d", rec.Seq, id)
			}
		case OpSent:
			rec.Seq = r.uvarint("seq")
			rec.PacketID = uint16(r.uvarint("packet id"))
		case OpReleased, OpDone:
			rec.Seq = r.uvarint("seq")
		case OpInbound, OpInboundDone:
			rec.PacketID = uint16(r.uvarint("packet id"))
		}
	default:
		return nil, fmt.Errorf("broker: session store record: unknown op %d", rec.Op)
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("broker: session store record: %d trailing bytes", len(r.b))
	}
	return rec, nil
}

func (r *recReader) message() *StoredMessage {
	m := &StoredMessage{ID: r.uvarint("message id"), Expiry: r.time("message expiry")}
	raw := r.bytes("message")
	if r.err != nil {
		return nil
	}
	h, ok, err := packets.ParseFixedHeader(raw, 0)
	if err != nil || !ok || h.Len+h.Remaining != len(raw) {
		r.fail("message packet")
		return nil
	}
	var p packets.Publish
	if err := packets.DecodePublish(packets.V5, h, raw[h.Len:], &p); err != nil {
		r.fail("message packet: " + err.Error())
		return nil
	}
	p.Detach()
	m.Topic, m.Payload, m.QoS, m.Retain = p.Topic, p.Payload, p.QoS, p.Retain
	m.Properties = forwardProps(&p.Properties, false)
	return m
}
