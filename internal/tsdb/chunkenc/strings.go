package chunkenc

import "encoding/binary"

const (
	encStringPlain = 1
	encStringDict  = 2
)

// AppendStrings appends the encoding of vs to dst: a dictionary encoding
// when values repeat enough to make it smaller, otherwise length-prefixed.
func AppendStrings(dst []byte, vs []string) []byte {
	plain := 0
	dict := make(map[string]uint64)
	var order []string
	dictBytes := 0
	for _, s := range vs {
		plain += uvarintLen(uint64(len(s))) + len(s)
		if _, ok := dict[s]; !ok && len(dict) <= len(vs)/2 {
			dict[s] = uint64(len(order))
			order = append(order, s)
			dictBytes += uvarintLen(uint64(len(s))) + len(s)
		}
	}
	if len(vs) > 0 && len(dict) <= len(vs)/2 {
		wd := bitsLen(uint64(len(order) - 1))
		size := uvarintLen(uint64(len(order))) + dictBytes + 1 + (int(wd)*len(vs)+7)/8
		if size < plain {
			dst = append(dst, encStringDict)
			dst = binary.AppendUvarint(dst, uint64(len(vs)))
			dst = binary.AppendUvarint(dst, uint64(len(order)))
			for _, s := range order {
				dst = binary.AppendUvarint(dst, uint64(len(s)))
				dst = append(dst, s...)
			}
			dst = append(dst, byte(wd))
			w := bitWriter{b: dst}
			for _, s := range vs {
				w.write(dict[s], wd)
			}
			return w.finish()
		}
	}
	dst = append(dst, encStringPlain)
	dst = binary.AppendUvarint(dst, uint64(len(vs)))
	for _, s := range vs {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	return dst
}

func readString(src []byte) (string, []byte, error) {
	l, rest, err := readUvarint(src)
	if err != nil {
		return "", nil, err
	}
	if l > uint64(len(rest)) {
		return "", nil, corrupt("string truncated")
	}
	return string(rest[:l]), rest[l:], nil
}

// DecodeStrings decodes src (from AppendStrings) into dst[:0].
func DecodeStrings(src []byte, dst []string) ([]string, error) {
	enc, n, rest, err := header(src, 0)
	if err != nil {
		return dst[:0], err
	}
	switch enc {
	case encStringPlain:
		if n > len(rest) {
			return dst[:0], corrupt("count %d too large for %d bytes", n, len(rest))
		}
		dst = grow(dst, n)
		for i := 0; i < n; i++ {
			var s string
			s, rest, err = readString(rest)
			if err != nil {
				return dst, err
			}
			dst = append(dst, s)
		}
		return dst, nil
	case encStringDict:
		d, rest, err := readUvarint(rest)
		if err != nil {
			return dst[:0], err
		}
		if d == 0 || d > uint64(len(rest)) {
			return dst[:0], corrupt("bad dictionary size %d", d)
		}
		order := make([]string, 0, d)
		for i := uint64(0); i < d; i++ {
			var s string
			s, rest, err = readString(rest)
			if err != nil {
				return dst[:0], err
			}
			order = append(order, s)
		}
		if len(rest) < 1 || rest[0] > 64 {
			return dst[:0], corrupt("bad index width")
		}
		wd := uint(rest[0])
		r := bitReader{b: rest[1:]}
		if uint64(wd)*uint64(n) > uint64(r.remaining()) {
			return dst[:0], corrupt("index stream truncated")
		}
		if wd == 0 && d != 1 {
			return dst[:0], corrupt("zero index width with %d entries", d)
		}
		dst = grow(dst, n)
		for i := 0; i < n; i++ {
			idx, err := r.read(wd)
			if err != nil {
				return dst, err
			}
			if idx >= d {
				return dst, corrupt("dictionary index %d out of range", idx)
			}
			dst = append(dst, order[idx])
		}
		return dst, nil
	default:
		return dst[:0], corrupt("unknown string encoding %d", enc)
	}
}
