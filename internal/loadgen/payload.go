package loadgen

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"strconv"
	"time"
	"unicode/utf8"
)

// Reading is one telemetry sample of a simulated sensor.
type Reading struct {
	Temperature float64 // °C
	Humidity    float64 // % relative humidity
	Pressure    float64 // hPa
	Battery     float64 // % charge
}

// Sensor produces realistic, slowly varying readings: each quantity follows
// a mean-reverting random walk around its own baseline, temperature and
// humidity also follow a daily cycle, and the battery drains slowly and is
// recharged when empty. A Sensor is deterministic for a given seed and not
// safe for concurrent use.
type Sensor struct {
	rng                     *rand.Rand
	baseT, baseH, baseP     float64
	t, h, p, battery, drain float64
}

// NewSensor returns a Sensor whose baselines and noise derive from seed.
func NewSensor(seed uint64) *Sensor {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	s := &Sensor{
		rng:     rng,
		baseT:   18 + rng.Float64()*8,    // 18..26 °C
		baseH:   35 + rng.Float64()*25,   // 35..60 %
		baseP:   1000 + rng.Float64()*25, // 1000..1025 hPa
		battery: 60 + rng.Float64()*40,   // 60..100 %
		drain:   0.001 + rng.Float64()*0.004,
	}
	s.t, s.h, s.p = s.baseT, s.baseH, s.baseP
	return s
}

// Next advances the sensor by one sample taken at now and returns it.
func (s *Sensor) Next(now time.Time) Reading {
	// Daily cycle: warmest mid-afternoon, most humid before dawn.
	hour := float64(now.UTC().Hour()) + float64(now.UTC().Minute())/60
	cycle := math.Sin((hour - 9) / 24 * 2 * math.Pi)
	targetT := s.baseT + 3*cycle
	targetH := s.baseH - 8*cycle
	s.t += 0.05*(targetT-s.t) + s.rng.NormFloat64()*0.05
	s.h += 0.05*(targetH-s.h) + s.rng.NormFloat64()*0.15
	s.p += 0.02*(s.baseP-s.p) + s.rng.NormFloat64()*0.05
	s.h = clamp(s.h, 0, 100)
	s.battery -= s.drain
	if s.battery < 5 {
		s.battery = 100 // swapped or recharged
	}
	return Reading{
		Temperature: round2(s.t),
		Humidity:    round2(s.h),
		Pressure:    round2(s.p),
		Battery:     round2(s.battery),
	}
}

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }

func round2(v float64) float64 { return math.Round(v*100) / 100 }

// AppendTimestamp appends t in UTC formatted like Python's
// datetime.utcnow().isoformat(): "2006-01-02T15:04:05.000000" with no zone,
// and without the fraction when the microseconds are zero.
func AppendTimestamp(dst []byte, t time.Time) []byte {
	t = t.UTC()
	if t.Nanosecond()/1000 == 0 {
		return t.AppendFormat(dst, "2006-01-02T15:04:05")
	}
	return t.AppendFormat(dst, "2006-01-02T15:04:05.000000")
}

// AppendTelemetry appends the seed's telemetry message for deviceID,
// formatted as Python's json.dumps would:
//
//	{"device_id": "id", "timestamp": "...", "data": {"temperature": 21.5, "humidity": 45.2, "pressure": 1013.25, "battery": 87.1}}
func AppendTelemetry(dst []byte, deviceID string, ts time.Time, r Reading) []byte {
	dst = appendEnvelopeStart(dst, deviceID, ts)
	dst = append(dst, `{"temperature": `...)
	dst = appendFloat(dst, r.Temperature)
	dst = append(dst, `, "humidity": `...)
	dst = appendFloat(dst, r.Humidity)
	dst = append(dst, `, "pressure": `...)
	dst = appendFloat(dst, r.Pressure)
	dst = append(dst, `, "battery": `...)
	dst = appendFloat(dst, r.Battery)
	return append(dst, "}}"...)
}

// DeviceState is the state a simulated device reports on devices/{id}/state.
type DeviceState struct {
	Status      string // "online"
	Firmware    string
	Battery     float64
	Uptime      time.Duration
	LastCommand string // the last command received, if any
}

// AppendState appends a state report for deviceID in the same envelope as
// telemetry (the seed's report_state uses the same publish helper).
func AppendState(dst []byte, deviceID string, ts time.Time, st DeviceState) []byte {
	dst = appendEnvelopeStart(dst, deviceID, ts)
	dst = append(dst, `{"status": `...)
	dst = appendJSONString(dst, st.Status)
	dst = append(dst, `, "firmware": `...)
	dst = appendJSONString(dst, st.Firmware)
	dst = append(dst, `, "battery": `...)
	dst = appendFloat(dst, st.Battery)
	dst = append(dst, `, "uptime_s": `...)
	dst = strconv.AppendInt(dst, int64(st.Uptime/time.Second), 10)
	if st.LastCommand != "" {
		dst = append(dst, `, "last_command": `...)
		dst = appendJSONString(dst, st.LastCommand)
	}
	return append(dst, "}}"...)
}

func appendEnvelopeStart(dst []byte, deviceID string, ts time.Time) []byte {
	dst = append(dst, `{"device_id": `...)
	dst = appendJSONString(dst, deviceID)
	dst = append(dst, `, "timestamp": "`...)
	dst = AppendTimestamp(dst, ts)
	return append(dst, `", "data": `...)
}

// appendFloat formats v as a JSON number, always with a fraction like
// Python's repr of a float (21.0, not 21).
func appendFloat(dst []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(dst, "null"...)
	}
	start := len(dst)
	dst = strconv.AppendFloat(dst, v, 'f', -1, 64)
	for _, c := range dst[start:] {
		if c == '.' {
			return dst
		}
	}
	return append(dst, ".0"...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string literal; invalid UTF-8 is
// replaced by U+FFFD so the output is always valid JSON.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20 || c == 0x7f:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}

// StampSize is the number of payload bytes PutStamp uses.
const StampSize = 8

// PutStamp writes t as unix nanoseconds (big endian) into the first
// StampSize bytes of payload, which must be at least that long.
func PutStamp(payload []byte, t time.Time) {
	binary.BigEndian.PutUint64(payload, uint64(t.UnixNano()))
}

// Stamp returns the unix-nanosecond send time written by PutStamp, or
// ok=false when payload is too short to carry one.
func Stamp(payload []byte) (unixNano int64, ok bool) {
	if len(payload) < StampSize {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(payload)), true
}
