// Package tsdb is Edgewise's embedded time-series storage engine: it owns
// the write-ahead log, the in-memory head, the immutable time-partitioned
// block files, the series index and the query engine (raw reads and Flux
// aggregateWindow-style windowed aggregates). The column codecs live in
// the leaf package chunkenc.
//
// # Data model
//
// The Influx model: a Point has a measurement, tags (the series identity,
// sorted by key internally) and typed fields (float, integer, unsigned,
// boolean, string) at a nanosecond timestamp. Each series+field is stored
// as its own column. A field keeps the type it was first written with
// (ErrFieldTypeConflict otherwise); writing the same series, field and
// timestamp again overwrites (last write wins).
//
// # Write path and what "acknowledged" means
//
// Write validates the whole batch, encodes it as one WAL record and hands
// it to a single writer goroutine. The writer drains all queued batches,
// checks field types, appends them with one write(2), and then, by
// FsyncPolicy:
//
//   - FsyncAlways (default): fsyncs once for the whole group (group commit)
//     before any of the Writes return. An acknowledged write survives
//     kill -9 and power loss.
//   - FsyncInterval: returns after write(2); the WAL is fsynced every
//     FsyncInterval. Acknowledged writes survive kill -9 (the data is in
//     the page cache) but the last interval may be lost on power loss.
//   - FsyncNever: as FsyncInterval but fsync happens only when a segment
//     is cut and on Close.
//
// After the WAL write the points are applied to the head in WAL order (a
// request grouped by series, which keeps each series' points in order), so
// "last write wins" is the same before and after recovery. Under
// FsyncAlways the fsync runs while the points go into the head; Write
// returns after both, so the points may be visible to queries a moment
// before they are durable. When Write returns nil the points are durable as
// the policy says and visible to queries.
//
// # Head and flushing
//
// The head keeps per partition, series and field an append buffer
// (timestamps plus value bits; out-of-order samples are accepted and
// sorted, de-duplicated, on flush, on query, or by the writer when writes
// pause). Partitions are BlockDuration
// wide and aligned to the Unix epoch. A partition is flushed to a block
// once the newest written timestamp is half a BlockDuration past its end,
// or with everything when the head holds more than MaxHeadSamples, or on
// Flush. Writes older than existing blocks are accepted into the head and
// flushed as a further block of that partition; queries merge all blocks
// and the head, newer blocks winning over older and the head over blocks.
//
// # Files
//
//	Dir/wal/00000001 ...          WAL segments (cut at 64 MiB and at flushes)
//	Dir/wal/checkpoint.00000007   WAL records of segments <= 7 not yet in blocks
//	Dir/blocks/<partition start, unix ns>/<seq>.blk   immutable blocks
//
// WAL record: u32 length, u32 CRC32-C of the payload, payload. A payload is
// one batch (format 2, see appendPoints): a 0x00 0x02 marker, the batch's
// series (measurement and tags) and field names once each, then per point
// a series index, varint time and per field a name index, type byte (1
// float, 2 integer, 3 unsigned, 4 boolean, 5 string) and value. Format 1
// payloads of earlier versions (every point spelled out) still replay. On
// Open the newest checkpoint and then every newer segment are replayed; at
// the first torn or corrupt record (short read, bad length, CRC mismatch,
// undecodable payload) the file is truncated there, a warning is logged,
// and replay continues with the next file. New writes always go to a fresh
// segment.
//
// Checkpointing: a flush first cuts the WAL (inside the writer goroutine,
// so segments <= N hold exactly what was applied before the partitions
// were detached), writes the blocks, then rewrites the old checkpoint and
// segments <= N into checkpoint.N keeping only points of partitions that
// were not flushed (temp file, fsync, rename, dir fsync) and deletes the
// inputs. WAL data is therefore deleted only after its blocks are durable;
// a crash in between only replays data that is also in a block, which the
// query merge and the next flush make harmless.
//
// Block file (written to <seq>.blk.tmp, fsynced, renamed, directories
// fsynced; never modified afterwards):
//
//	"EWTSBLK1"
//	chunk data: timestamp columns and value columns (chunkenc formats)
//	index:
//	  varint partition start, uvarint series count, per series (sorted by
//	  series key): string measurement, uvarint tag count, tags, uvarint
//	  field count, per field (sorted by name): string name, type byte,
//	  uvarint chunk count, per chunk: varint minT, uvarint maxT-minT,
//	  uvarint count, uvarint ts offset, uvarint ts length, u32 ts CRC32-C,
//	  uvarint value offset, uvarint value length, u32 value CRC32-C and,
//	  for non-string fields, five u64 summaries: sum, min, max, first,
//	  last (value bits of the field type; float sum as float bits, integer
//	  sums wrap, boolean sum counts trues)
//	footer: u64 index offset, u64 index length, u32 index CRC32-C, "EWTSBLK1"
//
// A chunk holds at most 1024 samples of one series field. Fields of one
// series written with the same timestamps share one timestamp column (the
// chunk metas point at the same bytes), so a point with ten fields stores
// its timestamps once. Windowed aggregates fold in whole chunks from their
// summaries, without decoding, when the chunk lies inside the query range
// and inside one window and overlaps no other source.
//
// The series index (measurement + sorted tags -> series id; postings
// measurement -> ids and tag=value -> ids) is kept in memory and rebuilt
// on Open from the block indexes and the WAL; ids are process-local. A
// block that fails its checks on Open is logged and skipped, left in place.
//
// # Databases, compaction, retention, deletes, rollups
//
// A Catalog holds named databases (Dir/databases/<name>, catalog.json),
// each a DB with its own retention; it moves the single-database layout of
// earlier versions into the default database. Compact merges the blocks
// of a partition into one (newest wins, deleted samples dropped); the
// background goroutine runs it every CompactInterval. Retention drops whole
// partitions. Delete records a tombstone (tombstones.json) that masks older
// blocks at query time until compaction. Rollups keep per-window
// mean/min/max/count of a database in another, recomputed per flushed
// partition and, for the windows a Delete touches, by the delete itself. Blocks leaving the block list are closed when the last query
// that planned with them ends. OutOfOrderWindow, retention and MaxSeries
// refuse points with ErrOutOfWindow and ErrSeriesLimit; WritePartial
// stores the rest. docs/storage.md is the user-facing description.
//
// # Queries
//
// Query selects a measurement, tag equality matchers (an empty value
// matches series without the tag) and Matchers (=, !=, =~, !~; regexps
// unanchored as in InfluxQL), one, several or all fields and [Start, End);
// Desc returns newest first and MaxSamples bounds the samples a query may
// materialise (ErrQueryLimit).
// Every > 0 aggregates with Flux aggregateWindow semantics: windows
// [k*Every, (k+1)*Every) aligned to the epoch, each output labelled with
// its stop time clipped to End, empty windows omitted. mean yields floats,
// sum keeps integer and unsigned types, count yields integers, min, max,
// first and last keep the field type; booleans and strings support only
// count, first and last. A query sees a consistent snapshot of the head
// and blocks taken under a read lock.
//
// Raw queries may carry numeric Filters (value op constant); chunks whose
// summary min/max cannot match are skipped undecoded and Limit counts only
// passing samples. The first (or, for QueryNewest, last) sample of a whole
// chunk comes from its summary. QueryNewest reads runs newest first and
// stops at Limit; QueryEach delivers the result one series at a time.
package tsdb
