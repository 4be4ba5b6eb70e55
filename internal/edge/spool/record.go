package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
)

// Record is one queued outbound message.
type Record struct {
	Seq     uint64    // assigned by Append
	Time    time.Time // when it was enqueued (assigned by Append when zero)
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
}

// Size is the record's size on disk.
func (r *Record) Size() int {
	return frameHeader + bodyFixed + uvarintLen(uint64(len(r.Topic))) + len(r.Topic) + len(r.Payload)
}

const (
	frameHeader = 8 // length + CRC
	bodyFixed   = 8 + 8 + 1
	maxBody     = 64 << 20 // a body longer than this is a corrupt length
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt is wrapped by errors about damaged records.
var ErrCorrupt = errors.New("spool: corrupt record")

// appendRecord encodes r (with its Seq and Time) at the end of dst.
func appendRecord(dst []byte, r *Record) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, frameHeader)...)
	dst = binary.LittleEndian.AppendUint64(dst, r.Seq)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(r.Time.UnixNano()))
	flags := r.QoS & 3
	if r.Retain {
		flags |= 4
	}
	dst = append(dst, flags)
	dst = binary.AppendUvarint(dst, uint64(len(r.Topic)))
	dst = append(dst, r.Topic...)
	dst = append(dst, r.Payload...)
	body := dst[start+frameHeader:]
	binary.LittleEndian.PutUint32(dst[start:], uint32(len(body)))
	binary.LittleEndian.PutUint32(dst[start+4:], crc32.Checksum(body, castagnoli))
	return dst
}

// ReadRecord decodes the record at the start of b. It returns the record
// (Topic and Payload are copies), the bytes it used, and ok=false with no
// error when b holds only the beginning of a record. A record whose length,
// CRC or fields are invalid is an error wrapping ErrCorrupt.
func ReadRecord(b []byte) (r Record, n int, ok bool, err error) {
	if len(b) < frameHeader {
		return r, 0, false, nil
	}
	size := binary.LittleEndian.Uint32(b)
	if size < bodyFixed+1 || size > maxBody {
		return r, 0, false, fmt.Errorf("%w: body length %d", ErrCorrupt, size)
	}
	if len(b) < frameHeader+int(size) {
		return r, 0, false, nil
	}
	body := b[frameHeader : frameHeader+int(size)]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[4:]) {
		return r, 0, false, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	r.Seq = binary.LittleEndian.Uint64(body)
	r.Time = time.Unix(0, int64(binary.LittleEndian.Uint64(body[8:])))
	flags := body[16]
	if flags&^7 != 0 || flags&3 == 3 {
		return Record{}, 0, false, fmt.Errorf("%w: flags %#x", ErrCorrupt, flags)
	}
	r.QoS, r.Retain = flags&3, flags&4 != 0
	tl, k := binary.Uvarint(body[bodyFixed:])
	if k <= 0 || tl > uint64(len(body)-bodyFixed-k) {
		return Record{}, 0, false, fmt.Errorf("%w: topic length", ErrCorrupt)
	}
	rest := body[bodyFixed+k:]
	r.Topic = string(rest[:tl])
	r.Payload = append([]byte{}, rest[tl:]...)
	return r, frameHeader + int(size), true, nil
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
