package chunkenc

import (
	"encoding/binary"
	"math"
	"math/bits"
)

const (
	encFloatGorilla = 1
	encFloatDecimal = 2
)

// maxExactInt is the largest integer magnitude a float64 holds exactly.
const maxExactInt = 1 << 53

// AppendFloats appends the encoding of vs to dst: a decimal (scaled
// integer) encoding when every value round-trips through it, otherwise
// Gorilla XOR; the decimal form is used only when it is smaller.
func AppendFloats(dst []byte, vs []float64) []byte {
	if e, ok := decimalExponent(vs); ok {
		ms := make([]int64, len(vs))
		p := float64(pow10[e])
		for i, v := range vs {
			ms[i] = int64(math.Round(v * p))
		}
		start := len(dst)
		dst = append(dst, encFloatDecimal)
		dst = binary.AppendUvarint(dst, uint64(len(vs)))
		dst = binary.AppendUvarint(dst, uint64(e))
		dst = AppendInts(dst, ms)
		// Gorilla costs at least 8 bytes + 1 bit per value; compare cheaply.
		if len(dst)-start <= 9+len(vs)/8 {
			return dst
		}
		g := appendGorilla(nil, vs)
		if len(g) >= len(dst)-start {
			return dst
		}
		return append(dst[:start], g...)
	}
	return appendGorilla(dst, vs)
}

// decimalExponent finds the smallest e <= 9 such that every v equals
// round(v*10^e)/10^e bit for bit.
func decimalExponent(vs []float64) (int, bool) {
	if len(vs) == 0 {
		return 0, false
	}
	e := 0
	for _, v := range vs {
		for ; e <= 9; e++ {
			p := float64(pow10[e])
			m := math.Round(v * p)
			if math.Abs(m) < maxExactInt && math.Float64bits(float64(int64(m))/p) == math.Float64bits(v) {
				break
			}
		}
		if e > 9 {
			return 0, false
		}
	}
	// A value exact at a smaller exponent is almost always exact at a larger
	// one; verify rather than rely on it.
	p := float64(pow10[e])
	for _, v := range vs {
		m := math.Round(v * p)
		if math.Abs(m) >= maxExactInt || math.Float64bits(float64(int64(m))/p) != math.Float64bits(v) {
			return 0, false
		}
	}
	return e, true
}

func appendGorilla(dst []byte, vs []float64) []byte {
	dst = append(dst, encFloatGorilla)
	dst = binary.AppendUvarint(dst, uint64(len(vs)))
	if len(vs) == 0 {
		return dst
	}
	prev := math.Float64bits(vs[0])
	dst = binary.LittleEndian.AppendUint64(dst, prev)
	w := bitWriter{b: dst}
	var lead, trail uint = 65, 0 // no window yet
	for _, f := range vs[1:] {
		cur := math.Float64bits(f)
		x := cur ^ prev
		prev = cur
		if x == 0 {
			w.write(0, 1)
			continue
		}
		l := uint(bits.LeadingZeros64(x))
		t := uint(bits.TrailingZeros64(x))
		if l > 31 {
			l = 31
		}
		if lead <= 64 && l >= lead && t >= trail {
			w.write(0b10, 2)
			w.write(x>>trail, 64-lead-trail)
			continue
		}
		lead, trail = l, t
		sig := 64 - l - t
		w.write(0b11, 2)
		w.write(uint64(l), 5)
		w.write(uint64(sig&63), 6) // 64 is written as 0
		w.write(x>>t, sig)
	}
	return w.finish()
}

// DecodeFloats decodes src (from AppendFloats) into dst[:0].
func DecodeFloats(src []byte, dst []float64) ([]float64, error) {
	if len(src) > 0 && src[0] == encFloatDecimal {
		_, n, rest, err := header(src, 0)
		if err != nil {
			return dst[:0], err
		}
		e, rest, err := readUvarint(rest)
		if err != nil {
			return dst[:0], err
		}
		if e > 9 {
			return dst[:0], corrupt("bad decimal exponent %d", e)
		}
		ms, err := DecodeInts(rest, nil)
		if err != nil {
			return dst[:0], err
		}
		if len(ms) != n {
			return dst[:0], corrupt("decimal count mismatch")
		}
		p := float64(pow10[e])
		dst = grow(dst, n)
		for _, m := range ms {
			dst = append(dst, float64(m)/p)
		}
		return dst, nil
	}
	enc, n, rest, err := header(src, 1)
	if err != nil {
		return dst[:0], err
	}
	if enc != encFloatGorilla {
		return dst[:0], corrupt("unknown float encoding %d", enc)
	}
	dst = grow(dst, n)
	if n == 0 {
		return dst, nil
	}
	if len(rest) < 8 {
		return dst, corrupt("float chunk truncated")
	}
	prev := binary.LittleEndian.Uint64(rest)
	dst = append(dst, math.Float64frombits(prev))
	r := bitReader{b: rest[8:]}
	var lead, trail uint
	haveWindow := false
	for i := 1; i < n; i++ {
		b, err := r.readBit()
		if err != nil {
			return dst, err
		}
		if !b {
			dst = append(dst, math.Float64frombits(prev))
			continue
		}
		b, err = r.readBit()
		if err != nil {
			return dst, err
		}
		if b {
			l, err := r.read(5)
			if err != nil {
				return dst, err
			}
			s, err := r.read(6)
			if err != nil {
				return dst, err
			}
			if s == 0 {
				s = 64
			}
			if l+s > 64 {
				return dst, corrupt("bad xor window")
			}
			lead, trail = uint(l), uint(64-l-s)
			haveWindow = true
		} else if !haveWindow {
			return dst, corrupt("xor window reused before set")
		}
		x, err := r.read(64 - lead - trail)
		if err != nil {
			return dst, err
		}
		prev ^= x << trail
		dst = append(dst, math.Float64frombits(prev))
	}
	return dst, nil
}
