// Package spool is the on-disk queue behind durable rule actions: a FIFO
// of opaque records in segment files, written before a rule's publish
// hook returns and removed only after the action's sink acknowledged them.
//
// # Format
//
// A spool is a directory of segment files named by the sequence number of
// their first record (20 zero-padded digits, ".seg") and an "ack" file.
// A segment starts with the 8-byte magic "EWSPOOL1" and the little-endian
// uint64 base sequence; each record is a little-endian uint32 length, the
// CRC-32C (Castagnoli) of the data, and the data. The ack file holds the
// highest acknowledged sequence (uint64) and its CRC-32C; it is rewritten
// in place on every Ack (a write that survives kill -9) and synced by the
// interval loop and on Close, not on every Ack. Losing an ack (a power
// loss before it reached the disk) only redelivers records: delivery is at
// least once.
//
// # Writing, fsync and limits
//
// Append buffers records in memory; Commit writes them with one write
// call and, under FsyncAlways, one fsync for everything appended since the
// previous Commit (group commit: concurrent Commits share it). Under
// FsyncInterval, Commit returns once the operating system has the bytes
// (they survive kill -9) and a background loop syncs every Interval (a
// power loss can lose the last interval). A new segment starts when the
// current one reaches SegmentBytes; segments whose records are all
// acknowledged are deleted. When the segments would grow beyond MaxBytes,
// Append returns ErrFull and the caller drops the new record (drop newest:
// what is already spooled is never discarded to make room).
//
// # Recovery
//
// Open scans every segment and checks each record's length and checksum.
// A torn record at the end of the last segment (a write cut short) is
// truncated; a damaged record inside the files ends its segment, and the
// records after it are counted in Stats.Lost. Reading starts again at the
// first unacknowledged record, in order.
package spool
