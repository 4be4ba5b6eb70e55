// Package spool is the agent's store-and-forward queue: a disk-backed,
// bounded FIFO of outbound MQTT messages that survives restarts and
// kill -9.
//
// # Format
//
// The queue is a directory of segment files named by the sequence number
// of their first record ("%020d.seg"). A segment is a sequence of records:
//
//	u32  body length (little endian)
//	u32  CRC-32C of the body
//	body:
//	  u64     sequence number
//	  i64     enqueue time, Unix nanoseconds
//	  u8      flags: bits 0-1 QoS, bit 2 retain
//	  uvarint topic length, topic bytes
//	  payload bytes (the rest of the body, untouched)
//
// Sequence numbers are consecutive across segments. The file "ack" holds
// the acknowledged head: the lowest sequence number not yet acknowledged by
// the cloud (u64 + CRC-32C). Records below it are delivered; a segment
// whose records are all below it is deleted.
//
// # Durability
//
// Append writes a batch with one write and, with FsyncAlways (the default),
// fsyncs before it returns; concurrent appenders share fsyncs (group
// commit). FsyncInterval syncs in the background every FsyncInterval and
// FsyncNever leaves it to the operating system. The agent calls Append from
// its local broker's publish hook, so a device's QoS 1 PUBACK means the
// message is in the spool (on disk with FsyncAlways).
//
// The ack file is written at most every AckInterval and on Close, and
// fsynced with the fsync policy: after a crash, messages acknowledged in the
// last moments before it may be sent again. The cloud's store overwrites a
// point with the same series, field and timestamp, so a resend does not
// duplicate stored data.
//
// Open scans every segment and checks each record's length, CRC and
// sequence number. A torn tail (kill -9 or power loss during a write) is
// truncated; a damaged record in the middle of a segment ends that segment
// (what follows in it is lost and counted in Stats.Corrupt) and the next
// segment is read as usual.
//
// # Limits and drop policy
//
// MaxBytes bounds the total size of the segment files and MaxAge the age of
// the oldest record. With DropOldest (the default) the oldest whole
// segments are deleted to make room or when all their records are older
// than MaxAge, and their unacknowledged records are counted in
// Stats.DroppedSize or Stats.DroppedAge; segments roll at SegmentBytes or
// when their first record is older than MaxAge/8, so drops are about one
// segment at a time. With RejectNew, Append fails with ErrFull instead and
// nothing already queued is lost; the local device gets an error PUBACK
// (MQTT 5) or is disconnected (3.1.1) and resends later.
//
// # Reading
//
// A Reader iterates over the records from a sequence number on, following
// appends and skipping what was dropped. Records are removed only by Ack
// (or the drop policy), never by reading, so after a reconnect the bridge
// reads again from Head.
package spool
