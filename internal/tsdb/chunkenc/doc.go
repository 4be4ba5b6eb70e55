// Package chunkenc owns the column codecs of the time-series store: the
// byte formats of one chunk of timestamps or of one chunk of typed values.
//
// It is a leaf package (standard library only). Every codec appends to a
// caller-supplied buffer and every decoder validates its input: corrupt or
// truncated bytes give an error wrapping ErrCorrupt, never a panic, and a
// decoder never allocates more than a small multiple of its input size.
//
// Formats (all integers are little-endian; varint/uvarint are
// encoding/binary's; bit streams are written most significant bit first):
//
// Timestamps (AppendTimestamps):
//
//	byte     encoding (1 = delta-of-delta)
//	uvarint  n
//	varint   t0                      (n >= 1)
//	uvarint  e: every delta is a multiple of 10^e (n >= 2)
//	varint   (t1-t0)/10^e            (n >= 2)
//	bits     n-2 delta-of-deltas (in units of 10^e), zig-zag encoded, each
//	         prefixed by its bucket: '0' = 0, '10' 7 bits, '110' 9 bits,
//	         '1110' 12 bits, '11110' 32 bits, '11111' 64 bits
//
// Floats (AppendFloats) pick the smaller of:
//
//	byte 1 (Gorilla XOR): uvarint n, 64-bit first value, then per value
//	     '0' (same as previous) or '1' followed by '0' + the meaningful bits
//	     in the previous window, or '1' + 5 bits leading zeros + 6 bits
//	     length (0 means 64) + the meaningful bits.
//	byte 2 (decimal): uvarint n, uvarint e, then the integers v*10^e encoded
//	     as by AppendInts. Used only when every value round-trips bit-exactly,
//	     which holds for most sensor readings with a fixed resolution.
//
// Integers (AppendInts; AppendUints reuses it on the two's complement bits):
//
//	byte     1 = zig-zag varint deltas, 2 = bit-packed zig-zag deltas,
//	         3 = bit-packed zig-zag delta-of-deltas
//	uvarint  n
//	varint   first value (n >= 1)
//	mode 1:  n-1 uvarints
//	mode 2:  byte width, (n-1)*width bits
//	mode 3:  varint first delta (n >= 2), byte width, (n-2)*width bits
//
// Booleans (AppendBools): byte 1, uvarint n, n bits (1 = true).
//
// Strings (AppendStrings) pick the smaller of:
//
//	byte 1 (plain): uvarint n, then n times uvarint length + bytes
//	byte 2 (dictionary): uvarint n, uvarint d, d times uvarint length +
//	     bytes, byte width, n indexes of width bits
//
// All arithmetic on deltas wraps, so every int64 and uint64 sequence
// (including math.MinInt64/MaxInt64 neighbours) round-trips exactly; floats
// round-trip bit-exactly, including NaN payloads and negative zero.
package chunkenc
