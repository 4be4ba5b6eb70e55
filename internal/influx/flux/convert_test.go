package flux

import (
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

// TestConvert runs every conversion function over values of every kind,
// edge cases included, against testdata/convert.txt (go test -update
// rewrites it).
func TestConvert(t *testing.T) {
	in := []Value{
		{}, Int(0), Int(1), Int(-3), Int(math.MaxInt64), Uint(7), Uint(math.MaxUint64),
		Float(0), Float(1), Float(2.5), Float(-1.5), Float(math.NaN()), Float(math.Inf(1)), Float(1e19), Float(1e20),
		Bool(true), Bool(false),
		Str("42"), Str("-1"), Str("2.5"), Str("x"), Str("true"), Str("TRUE"), Str("1"), Str(""),
		Str("2020-01-01T00:00:00Z"), Str("1h30m"), Str("-2d"), Str("1mo"), Str("1h "), Str("-"),
		Time(1_577_836_800_000_000_000), Time(-1), Duration(int64(90*time.Second), 0), Duration(-int64(time.Hour), 0),
		Duration(0, 14), Duration(0, 0), Str("18446744073709551615"),
	}
	var b strings.Builder
	for _, to := range []string{"int", "uint", "float", "string", "bool", "time", "duration"} {
		for _, v := range in {
			args := newRecord()
			args.set("v", v)
			out, err := convertFn(to)(nil, args, nil)
			fmt.Fprintf(&b, "%s(v: %s %q) = ", to, v.Kind, v.String())
			if err != nil {
				fmt.Fprintf(&b, "error: %v\n", err)
				continue
			}
			fmt.Fprintf(&b, "%s %q\n", out.Kind, out.String())
		}
	}
	if *update {
		if err := os.WriteFile("testdata/convert.txt", []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile("testdata/convert.txt")
	if err != nil {
		t.Fatal(err)
	}
	got, wantLines := strings.Split(b.String(), "\n"), strings.Split(string(want), "\n")
	for i := range max(len(got), len(wantLines)) {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(wantLines) {
			w = wantLines[i]
		}
		if g != w {
			t.Errorf("line %d:\n got %s\nwant %s", i+1, g, w)
		}
	}
}
