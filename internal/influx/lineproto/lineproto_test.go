package lineproto

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// render prints a decoded line unambiguously for golden comparisons.
func render(l *Line) string {
	var b strings.Builder
	fmt.Fprintf(&b, "m=%q", l.Measurement)
	for _, t := range l.Tags {
		fmt.Fprintf(&b, " t[%q]=%q", t.Key, t.Value)
	}
	for _, f := range l.Fields {
		fmt.Fprintf(&b, " f[%q]=", f.Key)
		switch f.Type {
		case Float:
			fmt.Fprintf(&b, "float(%v)", f.Float)
		case Integer:
			fmt.Fprintf(&b, "int(%d)", f.Int)
		case Unsigned:
			fmt.Fprintf(&b, "uint(%d)", f.Uint)
		case Boolean:
			fmt.Fprintf(&b, "bool(%v)", f.Bool)
		case String:
			fmt.Fprintf(&b, "str(%q)", f.Str)
		}
	}
	if l.HasTime {
		fmt.Fprintf(&b, " @%d", l.Time)
	}
	return b.String()
}

func decodeAll(in string) (lines []string, errs []*LineError) {
	d := NewDecoder([]byte(in))
	for {
		l, err := d.Next()
		if errors.Is(err, ErrEOF) {
			return
		}
		var le *LineError
		if errors.As(err, &le) {
			errs = append(errs, le)
			continue
		}
		lines = append(lines, fmt.Sprintf("%d: %s", l.Number, render(l)))
	}
}

// Examples from InfluxDB's line protocol documentation (syntax, data
// types and special characters pages).
func TestDocumentedExamples(t *testing.T) {
	cases := []struct{ in, want string }{
		{`weather,location=us-midwest temperature=82 1465839830100400200`,
			`m="weather" t["location"]="us-midwest" f["temperature"]=float(82) @1465839830100400200`},
		{`myMeasurement,tag1=value1,tag2=value2 fieldKey="fieldValue" 1556813561098000000`,
			`m="myMeasurement" t["tag1"]="value1" t["tag2"]="value2" f["fieldKey"]=str("fieldValue") @1556813561098000000`},
		{`my\ Measurement fieldKey="string value"`, `m="my Measurement" f["fieldKey"]=str("string value")`},
		{`"Measurement\ 1" fieldKey="string value"`, `m="\"Measurement 1\"" f["fieldKey"]=str("string value")`},
		{`myMeasurement,tagKey=Names\ with\ spaces fieldKey="string value"`,
			`m="myMeasurement" t["tagKey"]="Names with spaces" f["fieldKey"]=str("string value")`},
		{`myMeasurement fieldKey="\"string\" within a string"`, `m="myMeasurement" f["fieldKey"]=str("\"string\" within a string")`},
		{`myMeasurement,tag\ Key1=tag\ Value1,tag\ Key2=tag\ Value2 field\ Key="string value"`,
			`m="myMeasurement" t["tag Key1"]="tag Value1" t["tag Key2"]="tag Value2" f["field Key"]=str("string value")`},
		{`myMeasurement,tagKey=🍭 fieldKey="Launch 🚀" 1556813561098000000`,
			`m="myMeasurement" t["tagKey"]="🍭" f["fieldKey"]=str("Launch 🚀") @1556813561098000000`},
		{`myMeasurement fieldKey="C:\\Program Files\\x"`, `m="myMeasurement" f["fieldKey"]=str("C:\\Program Files\\x")`},
		{`myMeasurement fieldKey="a\b"`, `m="myMeasurement" f["fieldKey"]=str("a\\b")`},
		{`m\,x,t\,a\=b=v\,1\=2\ 3 f\,k\=y\ z=1`, `m="m,x" t["t,a=b"]="v,1=2 3" f["f,k=y z"]=float(1)`},
		{`m,t=a\b f=1`, `m="m" t["t"]="a\\b" f["f"]=float(1)`},
		{`myMeasurement fieldKey=1.0`, `m="myMeasurement" f["fieldKey"]=float(1)`},
		{`myMeasurement fieldKey=1`, `m="myMeasurement" f["fieldKey"]=float(1)`},
		{`myMeasurement fieldKey=-1.234456e+78`, `m="myMeasurement" f["fieldKey"]=float(-1.234456e+78)`},
		{`myMeasurement fieldKey=1e10,b=.5,c=+3`, `m="myMeasurement" f["fieldKey"]=float(1e+10) f["b"]=float(0.5) f["c"]=float(3)`},
		{`myMeasurement fieldKey=1i,n=-1i,x=9223372036854775807i,y=-9223372036854775808i`,
			`m="myMeasurement" f["fieldKey"]=int(1) f["n"]=int(-1) f["x"]=int(9223372036854775807) f["y"]=int(-9223372036854775808)`},
		{`myMeasurement fieldKey=12485903u,m=18446744073709551615u`, `m="myMeasurement" f["fieldKey"]=uint(12485903) f["m"]=uint(18446744073709551615)`},
		{`m a=t,b=T,c=true,d=True,e=TRUE,f=f,g=F,h=false,i=False,j=FALSE`,
			`m="m" f["a"]=bool(true) f["b"]=bool(true) f["c"]=bool(true) f["d"]=bool(true) f["e"]=bool(true) f["f"]=bool(false) f["g"]=bool(false) f["h"]=bool(false) f["i"]=bool(false) f["j"]=bool(false)`},
		{`m f=1 -1`, `m="m" f["f"]=float(1) @-1`},
		{`m f=1,f=2i`, `m="m" f["f"]=int(2)`},
		{`m a=1,bb=2,cc=3,abc=4,a=5,cc=6`, `m="m" f["a"]=float(5) f["bb"]=float(2) f["cc"]=float(6) f["abc"]=float(4)`},
		{"m f=\"two\nlines\" 5", `m="m" f["f"]=str("two\nlines") @5`},
		{"m f=1   7  \r", `m="m" f["f"]=float(1) @7`},
		{`m f=""`, `m="m" f["f"]=str("")`},
	}
	for _, c := range cases {
		lines, errs := decodeAll(c.in)
		if len(errs) > 0 || len(lines) != 1 || lines[0] != "1: "+c.want {
			t.Errorf("%s\n got %q errs %v\nwant %q", c.in, lines, errs, c.want)
		}
	}
}

func TestBadLines(t *testing.T) {
	cases := []struct{ in, msg string }{
		{`m`, "missing fields"},
		{`m,t=v`, "missing fields"},
		{`m,t=v `, "missing fields"},
		{`m f=`, "missing field value"},
		{`m f="abc`, "unbalanced quotes"},
		{`m f=1 abc`, "bad timestamp"},
		{`m f=1 1 2`, "unexpected text"},
		{`m f=1x`, "invalid number"},
		{`m f=truee`, "invalid boolean"},
		{`m f=1.2.3`, "invalid number"},
		{`m f=nan`, "invalid boolean"},
		{`m f=1e400`, "invalid number"},
		{`m,=v f=1`, "missing tag key"},
		{`m,t= f=1`, "missing tag value"},
		{`m,t f=1`, "missing tag value"},
		{`,t=v f=1`, "missing measurement"},
		{`m =1`, "missing field key"},
		{`m f=9223372036854775808i`, "invalid integer"},
		{`m f=-1u`, "invalid number"},
		{`m f=1.5i`, "invalid integer"},
		{`m,a=1,a=2 f=1`, "duplicate tags"},
		{`m f="x"y`, "text after a string"},
	}
	for _, c := range cases {
		lines, errs := decodeAll(c.in)
		if len(lines) != 0 || len(errs) != 1 || !strings.Contains(errs[0].Msg, c.msg) {
			t.Errorf("%q: lines %q errs %v, want error containing %q", c.in, lines, errs, c.msg)
			continue
		}
		if errs[0].Text != c.in || errs[0].Error() != "unable to parse '"+c.in+"': "+errs[0].Msg {
			t.Errorf("%q: error %q", c.in, errs[0].Error())
		}
	}
}

// A bad line does not stop the good lines around it; line numbers count
// physical lines (including blank lines, comments and newlines inside
// strings).
func TestPartialInput(t *testing.T) {
	in := "# comment\n\ncpu v=1 1\ncpu v= 2\n  cpu s=\"a\nb\" 3\ncpu,x v=4 4\r\ncpu v=5i 5"
	lines, errs := decodeAll(in)
	want := []string{`3: m="cpu" f["v"]=float(1) @1`, `5: m="cpu" f["s"]=str("a\nb") @3`, `8: m="cpu" f["v"]=int(5) @5`}
	if fmt.Sprint(lines) != fmt.Sprint(want) {
		t.Fatalf("lines %q\nwant %q", lines, want)
	}
	if len(errs) != 2 || errs[0].Number != 4 || errs[0].Text != "cpu v= 2" || errs[1].Number != 7 || errs[1].Text != "cpu,x v=4 4" {
		t.Fatalf("errs %+v", errs)
	}
}

func TestPrecision(t *testing.T) {
	for in, want := range map[string]Precision{"": 1, "n": 1, "ns": 1, "u": 1e3, "us": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9} {
		p, err := ParsePrecision(in)
		if err != nil || p != want {
			t.Errorf("ParsePrecision(%q) = %v, %v", in, p, err)
		}
	}
	if _, err := ParsePrecision("d"); err == nil {
		t.Error("precision d accepted")
	}
	if n, err := Second.ToNanos(1465839830); err != nil || n != 1465839830e9 {
		t.Errorf("ToNanos = %d, %v", n, err)
	}
	if _, err := Hour.ToNanos(math.MaxInt64 / 1000); err == nil {
		t.Error("overflow accepted")
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		"weather,location=us-midwest temperature=82 1465839830100400200",
		`m\,x,t\,a\=b=v\,1\=2\ 3 f\,k\=y\ z=1,s="q\"\\",i=1i,u=2u,b=t -5`,
		"# c\n\nm f=\"a\nb\" 1\nbad\n",
		"readings,name=truck_0,fleet=South latitude=52.3,longitude=4.9,velocity=32i 1451606400000000000",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkKnownSameAsFull(t, data)
		if x, end, ok := plainDecimal(data, 0); ok {
			if y, err := strconv.ParseFloat(string(data[:end]), 64); err != nil || x != y {
				t.Fatalf("plainDecimal(%q) = %v, strconv.ParseFloat = %v %v", data[:end], x, y, err)
			}
		}
		checkTimestamp(t, data)
		d := NewDecoder(data)
		for i := 0; ; i++ {
			if i > len(data)+1 {
				t.Fatal("decoder does not advance")
			}
			l, err := d.Next()
			if errors.Is(err, ErrEOF) {
				return
			}
			if err != nil {
				var le *LineError
				if !errors.As(err, &le) || le.Number < 1 {
					t.Fatalf("unexpected error %v", err)
				}
				continue
			}
			if len(l.Measurement) == 0 || len(l.Fields) == 0 {
				t.Fatalf("accepted empty line %q", render(l))
			}
			for _, fl := range l.Fields {
				if len(fl.Key) == 0 || fl.Type < Float || fl.Type > String {
					t.Fatalf("bad field %+v", fl)
				}
				if fl.Type == Float && (math.IsNaN(fl.Float) || math.IsInf(fl.Float, 0)) {
					t.Fatalf("non-finite float")
				}
			}
		}
	})
}

// The decimal fast path must give exactly what strconv gives.
func TestParseDecimalMatchesStrconv(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	inputs := []string{"0", "-0", "0.0", "1", "-1.5", "3.14159", "38.24311", "100000000000000", "0.000000000000001",
		"999999999999999", "-99999999999999.9", "1.", ".5", "+2.25", "0.1", "0.2", "0.3"}
	for i := 0; i < 200000; i++ {
		digits := strconv.FormatUint(rng.Uint64N(1_000_000_000_000_000), 10)
		if len(digits) > 1 {
			p := rng.IntN(len(digits))
			digits = digits[:p] + "." + digits[p:]
		}
		if rng.IntN(2) == 0 {
			digits = "-" + digits
		}
		inputs = append(inputs, digits)
	}
	for _, in := range inputs {
		want, err := strconv.ParseFloat(in, 64)
		got, ok := parseFloat([]byte(in))
		if err != nil || !ok {
			t.Fatalf("%q: strconv %v, parseFloat ok=%v", in, err, ok)
		}
		if math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("%q: parseFloat %v (%x), strconv %v (%x)", in, got, math.Float64bits(got), want, math.Float64bits(want))
		}
	}
}

// outcomes renders every line's outcome; with known, lines whose series
// key parsed before are rendered from the first parse of that key.
func outcomes(data []byte, known bool) []string {
	d := NewDecoder(data)
	heads := map[string]string{} // series key -> rendering of measurement and tags
	if known {
		d.Known = func(k []byte) bool { _, ok := heads[string(k)]; return ok }
	}
	var out []string
	for i := 0; i <= len(data)+1; i++ {
		l, err := d.Next()
		if errors.Is(err, ErrEOF) {
			break
		}
		if err != nil {
			out = append(out, err.Error())
			continue
		}
		full := render(l)
		if l.Measurement == nil {
			h := heads[string(l.Series)]
			full = h + render(&Line{Fields: l.Fields, Time: l.Time, HasTime: l.HasTime})[len(`m=""`):]
		} else if known {
			head := render(&Line{Measurement: l.Measurement, Tags: l.Tags})
			if _, ok := heads[string(l.Series)]; !ok {
				heads[string(l.Series)] = head
			}
		}
		out = append(out, fmt.Sprintf("%d %s", l.Number, full))
	}
	return out
}

func checkKnownSameAsFull(t *testing.T, data []byte) {
	t.Helper()
	a, b := outcomes(data, false), outcomes(data, true)
	if !slices.Equal(a, b) {
		t.Fatalf("known-series decoding differs:\nfull:  %q\nknown: %q", a, b)
	}
}

func TestKnownSeriesSkipsTags(t *testing.T) {
	data := []byte("m,a=1,b=2 f=1 10\nm,a=1,b=2 f=2,g=\"x\" 20\nm,a=1,b=2 f=\nm,a=1,b=2\nm,a\\ x=1 f=3 30\nm,a\\ x=1 f=4 40\nm,b=2,a=1 f=5\n")
	checkKnownSameAsFull(t, data)
	d := NewDecoder(data)
	asked := 0
	d.Known = func(k []byte) bool { asked++; return string(k) == "m,a=1,b=2" }
	l, err := d.Next()
	if err != nil || l.Measurement != nil || string(l.Series) != "m,a=1,b=2" || len(l.Tags) != 0 {
		t.Fatalf("known line: %v %+v", err, l)
	}
	if asked != 1 {
		t.Fatalf("Known asked %d times", asked)
	}
}

// checkTimestamp compares the one-pass timestamp parser with finding the
// token's end and parseInt.
func checkTimestamp(t *testing.T, data []byte) {
	t.Helper()
	ts, end, ok := timestamp(data, 0)
	want := bytes.IndexFunc(data, func(r rune) bool { return r < 128 && isTimestampEnd(byte(r)) })
	if want < 0 {
		want = len(data)
	}
	if end != want {
		t.Fatalf("timestamp(%q) ends at %d, want %d", data, end, want)
	}
	if n, nok := parseInt(data[:end]); n != ts && nok || nok != ok {
		t.Fatalf("timestamp(%q) = %d %v, parseInt = %d %v", data, ts, ok, n, nok)
	}
}

func TestTimestamp(t *testing.T) {
	for _, s := range []string{"1451606400000000000", "9223372036854775807", "9223372036854775808", "9999999999999999999",
		"10000000000000000000", "-9223372036854775808", "+5", "0", "", "12a", "5 ", "5\n", "-", "00000000000000000001"} {
		checkTimestamp(t, []byte(s))
	}
	if ts, _, ok := timestamp([]byte("9223372036854775807 "), 0); !ok || ts != math.MaxInt64 {
		t.Fatalf("max int64: %d %v", ts, ok)
	}
	if _, _, ok := timestamp([]byte("9223372036854775808"), 0); ok {
		t.Fatal("overflow accepted")
	}
}
