package device

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// ErrQueueFull is returned by the publish methods when the device is
// offline and its offline queue holds Config.QueueMax messages already.
var ErrQueueFull = errors.New("device: offline queue is full")

// message is one queued publish.
type message struct {
	topic   string
	payload []byte
}

// queue is the bounded offline queue: FIFO, optionally persisted to an
// append-only file (DIR/queue.log) plus the offset of its first unsent
// record (DIR/queue.pos). Records are [len uint32][crc32 uint32][topic
// len uint16][topic][payload]; a torn record at the end (a crash while
// appending) is dropped on open. When the queue drains, both files are
// truncated.
type queue struct {
	mu   sync.Mutex
	max  int
	sync bool
	msgs []message
	log  *os.File // nil: memory only
	pos  *os.File
	head int64 // file offset of msgs[0]
	lens []int64
}

func openQueue(dir string, max int, syncWrites bool) (*queue, error) {
	q := &queue{max: max, sync: syncWrites}
	if dir == "" {
		return q, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("device: queue dir: %w", err)
	}
	var err error
	if q.log, err = os.OpenFile(filepath.Join(dir, "queue.log"), os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return nil, fmt.Errorf("device: open queue: %w", err)
	}
	if q.pos, err = os.OpenFile(filepath.Join(dir, "queue.pos"), os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		q.log.Close()
		return nil, fmt.Errorf("device: open queue: %w", err)
	}
	var b [8]byte
	if n, _ := q.pos.ReadAt(b[:], 0); n == 8 {
		q.head = int64(binary.LittleEndian.Uint64(b[:]))
	}
	if err := q.load(); err != nil {
		q.close()
		return nil, err
	}
	return q, nil
}

// load reads the unsent records and truncates a torn tail.
func (q *queue) load() error {
	st, err := q.log.Stat()
	if err != nil {
		return fmt.Errorf("device: queue: %w", err)
	}
	if q.head > st.Size() {
		q.head = 0
	}
	r := bufio.NewReader(io.NewSectionReader(q.log, q.head, st.Size()-q.head))
	off := q.head
	for {
		var h [8]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			break
		}
		n := binary.LittleEndian.Uint32(h[:4])
		if n < 2 || n > 64<<20 {
			break
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil || crc32.ChecksumIEEE(body) != binary.LittleEndian.Uint32(h[4:]) {
			break
		}
		tl := int(binary.LittleEndian.Uint16(body))
		if 2+tl > len(body) {
			break
		}
		q.msgs = append(q.msgs, message{topic: string(body[2 : 2+tl]), payload: body[2+tl:]})
		q.lens = append(q.lens, int64(8+n))
		off += int64(8 + n)
	}
	if err := q.log.Truncate(off); err != nil {
		return fmt.Errorf("device: queue: %w", err)
	}
	if len(q.msgs) == 0 {
		return q.reset()
	}
	return nil
}

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.msgs)
}

// push appends m, persisted before it returns.
func (q *queue) push(m message) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.msgs) >= q.max {
		return ErrQueueFull
	}
	if q.log != nil {
		if len(m.topic) > 65535 {
			return fmt.Errorf("device: topic too long")
		}
		body := make([]byte, 8+2+len(m.topic)+len(m.payload))
		binary.LittleEndian.PutUint32(body, uint32(2+len(m.topic)+len(m.payload)))
		binary.LittleEndian.PutUint16(body[8:], uint16(len(m.topic)))
		copy(body[10:], m.topic)
		copy(body[10+len(m.topic):], m.payload)
		binary.LittleEndian.PutUint32(body[4:], crc32.ChecksumIEEE(body[8:]))
		if _, err := q.log.Seek(0, io.SeekEnd); err != nil {
			return fmt.Errorf("device: queue: %w", err)
		}
		if _, err := q.log.Write(body); err != nil {
			return fmt.Errorf("device: queue: %w", err)
		}
		if q.sync {
			if err := q.log.Sync(); err != nil {
				return fmt.Errorf("device: queue: %w", err)
			}
		}
		q.lens = append(q.lens, int64(len(body)))
	}
	q.msgs = append(q.msgs, m)
	return nil
}

// peek returns the oldest message.
func (q *queue) peek() (message, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.msgs) == 0 {
		return message{}, false
	}
	return q.msgs[0], true
}

// pop drops the oldest message (after it was acknowledged).
func (q *queue) pop() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.msgs) == 0 {
		return nil
	}
	q.msgs[0] = message{}
	q.msgs = q.msgs[1:]
	if q.log == nil {
		return nil
	}
	q.head += q.lens[0]
	q.lens = q.lens[1:]
	if len(q.msgs) == 0 {
		return q.reset()
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(q.head))
	if _, err := q.pos.WriteAt(b[:], 0); err != nil {
		return fmt.Errorf("device: queue: %w", err)
	}
	return nil
}

// reset empties the files.
func (q *queue) reset() error {
	q.head, q.msgs, q.lens = 0, nil, nil
	if err := q.log.Truncate(0); err != nil {
		return fmt.Errorf("device: queue: %w", err)
	}
	if err := q.pos.Truncate(0); err != nil {
		return fmt.Errorf("device: queue: %w", err)
	}
	return nil
}

func (q *queue) close() {
	if q.log != nil {
		q.log.Close()
		q.pos.Close()
	}
}
