package tsdb

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/edgewise-iot/edgewise/internal/tsdb/chunkenc"
)

const (
	blockMagic      = "EWTSBLK1"
	blockFooterSize = 8 + 8 + 4 + 8
	blockExt        = ".blk"
	chunkSamples    = 1024 // maximum samples per chunk
)

// chunkMeta locates one chunk of one series field inside a block and
// summarises it. For non-string chunks sum/min/max/first/last hold value
// bits of the field type (sum counts trues for booleans).
type chunkMeta struct {
	minT, maxT     int64
	count          int
	tsOff, tsLen   uint64
	valOff, valLen uint64
	tsCRC, valCRC  uint32
	sum, min, max  uint64
	first, last    uint64
}

type blockField struct {
	typ    ValueType
	chunks []chunkMeta
}

type blockSeries struct {
	s      *series
	fields map[string]*blockField
}

// block is one immutable, loaded block file. Its index lives in memory;
// chunk bytes are read with ReadAt and checked against their CRCs.
type block struct {
	path       string
	seq        uint64
	part       int64
	minT, maxT int64
	size       int64
	samples    int
	f          *os.File
	series     map[uint64]*blockSeries

	refs      atomic.Int64 // queries using the block
	retired   atomic.Bool  // no longer in DB.blocks: close when refs is 0
	closeOnce sync.Once
}

func (b *block) acquire() { b.refs.Add(1) }

func (b *block) release() {
	if b.refs.Add(-1) == 0 && b.retired.Load() {
		b.closeFile()
	}
}

// retire marks a block removed from DB.blocks (under DB.mu, so no new
// query acquires it) and closes its file once unused.
func (b *block) retire() {
	b.retired.Store(true)
	if b.refs.Load() == 0 {
		b.closeFile()
	}
}

func (b *block) closeFile() { b.closeOnce.Do(func() { b.f.Close() }) }

// blockSeriesData is what writeBlock needs per series field: sorted,
// de-duplicated samples.
type blockFieldData struct {
	name string
	typ  ValueType
	ts   []int64
	vals []uint64
	strs []string
}

type blockSeriesData struct {
	s      *series
	fields []blockFieldData // sorted by name
}

// writeBlock writes a block file for partition part atomically (temporary
// file, fsync, rename, directory fsync) and returns its path.
func writeBlock(root string, part int64, seq uint64, data []blockSeriesData) (string, error) {
	dir := filepath.Join(root, strconv.FormatInt(part, 10))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create partition dir: %w", err)
	}
	final := filepath.Join(dir, fmt.Sprintf("%08d%s", seq, blockExt))
	tmp := final + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return "", fmt.Errorf("create block: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	off := uint64(0)
	write := func(b []byte) (uint64, error) {
		at := off
		_, err := bw.Write(b)
		off += uint64(len(b))
		return at, err
	}
	if _, err := write([]byte(blockMagic)); err != nil {
		return "", fmt.Errorf("write block: %w", err)
	}

	slices.SortFunc(data, func(a, b blockSeriesData) int { return cmp.Compare(a.s.key, b.s.key) })
	minT, maxT := int64(math.MaxInt64), int64(math.MinInt64)
	var idx []byte
	idx = binary.AppendVarint(idx, part)
	idx = binary.AppendUvarint(idx, uint64(len(data)))
	var tsBuf, valBuf []byte
	var fbuf []float64
	var ibuf []int64
	var bbuf []bool
	type tsChunk struct {
		off, len uint64
		crc      uint32
	}
	for _, sd := range data {
		idx = appendString(idx, sd.s.measurement)
		idx = binary.AppendUvarint(idx, uint64(len(sd.s.tags)))
		for _, t := range sd.s.tags {
			idx = appendString(idx, t.Key)
			idx = appendString(idx, t.Value)
		}
		idx = binary.AppendUvarint(idx, uint64(len(sd.fields)))
		// Timestamp chunks already written for this series, by content:
		// fields written together share one timestamp column.
		shared := map[string]tsChunk{}
		for _, fd := range sd.fields {
			idx = appendString(idx, fd.name)
			idx = append(idx, byte(fd.typ))
			nch := (len(fd.ts) + chunkSamples - 1) / chunkSamples
			idx = binary.AppendUvarint(idx, uint64(nch))
			for c := 0; c < nch; c++ {
				lo, hi := c*chunkSamples, min((c+1)*chunkSamples, len(fd.ts))
				ts := fd.ts[lo:hi]
				minT, maxT = min(minT, ts[0]), max(maxT, ts[len(ts)-1])
				tsBuf = chunkenc.AppendTimestamps(tsBuf[:0], ts)
				tc, ok := shared[string(tsBuf)]
				if !ok {
					at, err := write(tsBuf)
					if err != nil {
						return "", fmt.Errorf("write block: %w", err)
					}
					tc = tsChunk{off: at, len: uint64(len(tsBuf)), crc: crc32.Checksum(tsBuf, castagnoli)}
					shared[string(tsBuf)] = tc
				}
				var sum chunkMeta
				switch fd.typ {
				case Float:
					fbuf = fbuf[:0]
					for _, v := range fd.vals[lo:hi] {
						fbuf = append(fbuf, math.Float64frombits(v))
					}
					valBuf = chunkenc.AppendFloats(valBuf[:0], fbuf)
				case Integer, Unsigned:
					ibuf = ibuf[:0]
					for _, v := range fd.vals[lo:hi] {
						ibuf = append(ibuf, int64(v))
					}
					valBuf = chunkenc.AppendInts(valBuf[:0], ibuf)
				case Boolean:
					bbuf = bbuf[:0]
					for _, v := range fd.vals[lo:hi] {
						bbuf = append(bbuf, v != 0)
					}
					valBuf = chunkenc.AppendBools(valBuf[:0], bbuf)
				case String:
					valBuf = chunkenc.AppendStrings(valBuf[:0], fd.strs[lo:hi])
				}
				if fd.typ != String {
					sum = summarize(fd.typ, fd.vals[lo:hi])
				}
				vat, err := write(valBuf)
				if err != nil {
					return "", fmt.Errorf("write block: %w", err)
				}
				idx = binary.AppendVarint(idx, ts[0])
				idx = binary.AppendUvarint(idx, uint64(ts[len(ts)-1]-ts[0]))
				idx = binary.AppendUvarint(idx, uint64(len(ts)))
				idx = binary.AppendUvarint(idx, tc.off)
				idx = binary.AppendUvarint(idx, tc.len)
				idx = binary.LittleEndian.AppendUint32(idx, tc.crc)
				idx = binary.AppendUvarint(idx, vat)
				idx = binary.AppendUvarint(idx, uint64(len(valBuf)))
				idx = binary.LittleEndian.AppendUint32(idx, crc32.Checksum(valBuf, castagnoli))
				if fd.typ != String {
					for _, v := range [...]uint64{sum.sum, sum.min, sum.max, sum.first, sum.last} {
						idx = binary.LittleEndian.AppendUint64(idx, v)
					}
				}
			}
		}
	}
	idxOff, err := write(idx)
	if err != nil {
		return "", fmt.Errorf("write block: %w", err)
	}
	var footer []byte
	footer = binary.LittleEndian.AppendUint64(footer, idxOff)
	footer = binary.LittleEndian.AppendUint64(footer, uint64(len(idx)))
	footer = binary.LittleEndian.AppendUint32(footer, crc32.Checksum(idx, castagnoli))
	footer = append(footer, blockMagic...)
	if _, err := write(footer); err != nil {
		return "", fmt.Errorf("write block: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return "", fmt.Errorf("write block: %w", err)
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("sync block: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("close block: %w", err)
	}
	ok = true
	if err := os.Rename(tmp, final); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("rename block: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return "", err
	}
	if err := syncDir(root); err != nil {
		return "", err
	}
	return final, nil
}

// summarize computes the chunk summary of non-string value bits.
func summarize(typ ValueType, vals []uint64) chunkMeta {
	m := chunkMeta{first: vals[0], last: vals[len(vals)-1], min: vals[0], max: vals[0]}
	var fs float64
	for _, v := range vals {
		switch typ {
		case Float:
			f := math.Float64frombits(v)
			fs += f
			if f < math.Float64frombits(m.min) {
				m.min = v
			}
			if f > math.Float64frombits(m.max) {
				m.max = v
			}
		case Integer:
			m.sum += v
			m.min = uint64(min(int64(m.min), int64(v)))
			m.max = uint64(max(int64(m.max), int64(v)))
		case Unsigned, Boolean:
			m.sum += v
			m.min = min(m.min, v)
			m.max = max(m.max, v)
		}
	}
	if typ == Float {
		m.sum = math.Float64bits(fs)
	}
	return m
}

// openBlock loads the index of a block file, registering its series in ix.
func openBlock(path string, seq uint64, ix *seriesIndex) (*block, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open block: %w", err)
	}
	b, err := loadBlock(f, path, seq, ix)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("block %s: %w", filepath.Base(path), err)
	}
	return b, nil
}

func loadBlock(f *os.File, path string, seq uint64, ix *seriesIndex) (*block, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	if size < int64(len(blockMagic)+blockFooterSize) {
		return nil, fmt.Errorf("%w: block too small", ErrCorrupt)
	}
	footer := make([]byte, blockFooterSize)
	if _, err := f.ReadAt(footer, size-blockFooterSize); err != nil {
		return nil, err
	}
	if string(footer[20:]) != blockMagic {
		return nil, fmt.Errorf("%w: bad footer magic", ErrCorrupt)
	}
	idxOff := binary.LittleEndian.Uint64(footer)
	idxLen := binary.LittleEndian.Uint64(footer[8:])
	if idxOff < uint64(len(blockMagic)) || idxLen > uint64(size) || idxOff+idxLen != uint64(size-blockFooterSize) {
		return nil, fmt.Errorf("%w: bad index location", ErrCorrupt)
	}
	idx := make([]byte, idxLen)
	if _, err := f.ReadAt(idx, int64(idxOff)); err != nil {
		return nil, err
	}
	if crc32.Checksum(idx, castagnoli) != binary.LittleEndian.Uint32(footer[16:]) {
		return nil, fmt.Errorf("%w: index checksum mismatch", ErrCorrupt)
	}
	return parseBlockIndex(idx, idxOff, ix, func(b *block) {
		b.path, b.seq, b.f, b.size = path, seq, f, size
	})
}

// parseBlockIndex decodes a block index (dataEnd bounds chunk offsets).
func parseBlockIndex(idx []byte, dataEnd uint64, ix *seriesIndex, init func(*block)) (*block, error) {
	d := decoder{b: idx}
	b := &block{series: make(map[uint64]*blockSeries), minT: math.MaxInt64, maxT: math.MinInt64}
	init(b)
	b.part = d.varint()
	ns := d.count(3)
	for i := 0; i < ns && d.err == nil; i++ {
		meas := d.string()
		nt := d.count(2)
		tags := make([]Tag, 0, nt)
		for j := 0; j < nt; j++ {
			tags = append(tags, Tag{Key: d.string(), Value: d.string()})
		}
		if meas == "" || !slices.IsSortedFunc(tags, func(a, b Tag) int { return cmp.Compare(a.Key, b.Key) }) {
			d.fail("series")
			break
		}
		s := ix.getOrCreate(seriesKey(meas, tags), meas, tags)
		bs := &blockSeries{s: s, fields: make(map[string]*blockField)}
		b.series[s.id] = bs
		nf := d.count(3)
		for j := 0; j < nf && d.err == nil; j++ {
			name := d.string()
			typ := ValueType(d.byte())
			if typ < Float || typ > String || name == "" {
				d.fail("field")
				break
			}
			if old, ok := s.fields[name]; !ok {
				ix.setField(s, name, typ, -1)
			} else if old != typ {
				d.fail("field type (conflicts with another block)")
				break
			}
			nc := d.count(10)
			bf := &blockField{typ: typ, chunks: make([]chunkMeta, 0, nc)}
			bs.fields[name] = bf
			for k := 0; k < nc && d.err == nil; k++ {
				var c chunkMeta
				c.minT = d.varint()
				c.maxT = int64(uint64(c.minT) + d.uvarint())
				c.count = int(d.uvarint())
				c.tsOff, c.tsLen, c.tsCRC = d.uvarint(), d.uvarint(), d.u32()
				c.valOff, c.valLen, c.valCRC = d.uvarint(), d.uvarint(), d.u32()
				if typ != String {
					c.sum, c.min, c.max, c.first, c.last = d.u64(), d.u64(), d.u64(), d.u64(), d.u64()
				}
				if c.count <= 0 || c.count > chunkenc.MaxCount || c.maxT < c.minT ||
					c.tsOff+c.tsLen > dataEnd || c.valOff+c.valLen > dataEnd ||
					c.tsLen > dataEnd || c.valLen > dataEnd {
					d.fail("chunk meta")
					break
				}
				bf.chunks = append(bf.chunks, c)
				b.samples += c.count
				b.minT, b.maxT = min(b.minT, c.minT), max(b.maxT, c.maxT)
			}
		}
	}
	if d.err != nil {
		return nil, d.err
	}
	return b, nil
}

// readChunk reads and decodes one chunk into samples.
func (b *block) readChunk(typ ValueType, c *chunkMeta) ([]Sample, error) {
	tsb := make([]byte, c.tsLen)
	if _, err := b.f.ReadAt(tsb, int64(c.tsOff)); err != nil {
		return nil, fmt.Errorf("read chunk: %w", err)
	}
	vb := make([]byte, c.valLen)
	if _, err := b.f.ReadAt(vb, int64(c.valOff)); err != nil {
		return nil, fmt.Errorf("read chunk: %w", err)
	}
	return decodeChunk(typ, c, tsb, vb)
}

func decodeChunk(typ ValueType, c *chunkMeta, tsb, vb []byte) ([]Sample, error) {
	if crc32.Checksum(tsb, castagnoli) != c.tsCRC || crc32.Checksum(vb, castagnoli) != c.valCRC {
		return nil, fmt.Errorf("%w: chunk checksum mismatch", ErrCorrupt)
	}
	ts, err := chunkenc.DecodeTimestamps(tsb, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	out := make([]Sample, len(ts))
	for i, t := range ts {
		out[i].Time = t
	}
	n := 0
	switch typ {
	case Float:
		vs, err := chunkenc.DecodeFloats(vb, nil)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		n = len(vs)
		for i := 0; i < min(n, len(out)); i++ {
			out[i].Value = FloatValue(vs[i])
		}
	case Integer, Unsigned:
		vs, err := chunkenc.DecodeInts(vb, nil)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		n = len(vs)
		for i := 0; i < min(n, len(out)); i++ {
			out[i].Value = numValue(typ, uint64(vs[i]))
		}
	case Boolean:
		vs, err := chunkenc.DecodeBools(vb, nil)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		n = len(vs)
		for i := 0; i < min(n, len(out)); i++ {
			out[i].Value = BoolValue(vs[i])
		}
	case String:
		vs, err := chunkenc.DecodeStrings(vb, nil)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		n = len(vs)
		for i := 0; i < min(n, len(out)); i++ {
			out[i].Value = StringValue(vs[i])
		}
	}
	if n != len(ts) || n != c.count {
		return nil, fmt.Errorf("%w: chunk holds %d timestamps and %d values, index says %d", ErrCorrupt, len(ts), n, c.count)
	}
	return out, nil
}

// blockPaths lists block files under root as (partition dir, seq, path),
// removing leftover temporary files.
type blockFile struct {
	seq  uint64
	path string
}

func listBlocks(root string) ([]blockFile, error) {
	parts, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var out []blockFile
	for _, p := range parts {
		if !p.IsDir() {
			continue
		}
		dir := filepath.Join(root, p.Name())
		ents, err := os.ReadDir(dir)
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			name := e.Name()
			if filepath.Ext(name) == ".tmp" {
				_ = os.Remove(filepath.Join(dir, name))
				continue
			}
			if filepath.Ext(name) != blockExt {
				continue
			}
			seq, err := strconv.ParseUint(name[:len(name)-len(blockExt)], 10, 64)
			if err != nil {
				continue
			}
			out = append(out, blockFile{seq: seq, path: filepath.Join(dir, name)})
		}
	}
	slices.SortFunc(out, func(a, b blockFile) int { return cmp.Compare(a.seq, b.seq) })
	return out, nil
}
