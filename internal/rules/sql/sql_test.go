package sql

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

// stdDecode decodes with encoding/json and applies this package's number
// rule (a number with a fraction or exponent is a Decimal, else an Int).
func stdDecode(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return convNumbers(v), nil
}

func convNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		return parseNumber([]byte(x), !strings.ContainsAny(string(x), ".eE"))
	case map[string]any:
		for k, e := range x {
			x[k] = convNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = convNumbers(e)
		}
	}
	return v
}

func sameJSON(t *testing.T, b []byte) {
	t.Helper()
	std := json.Valid(b)
	if !std && bytes.Count(b, []byte("[")) < MaxJSONDepth && ValidJSON(b) {
		t.Fatalf("ValidJSON accepts %q, encoding/json does not", b)
	}
	if !ValidJSON(b) {
		if std && bytes.Count(b, []byte("["))+bytes.Count(b, []byte("{")) < MaxJSONDepth {
			t.Fatalf("ValidJSON rejects %q, encoding/json accepts it", b)
		}
		return
	}
	want, err := stdDecode(b)
	if err != nil {
		t.Fatalf("std decode of %q: %v", b, err)
	}
	got, _ := decodeAt(b, skipWS(b, 0))
	if !reflect.DeepEqual(normUTF8(got), normUTF8(want)) {
		t.Fatalf("decode %q:\n got  %#v\n want %#v", b, got, want)
	}
}

// normUTF8 maps strings through encoding/json's replacement of invalid
// UTF-8, which this package does not do.
func normUTF8(v any) any {
	b, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}

func TestJSONAgainstEncodingJSON(t *testing.T) {
	for _, s := range []string{
		`{}`, `[]`, `{"a":1,"b":[1,2.5,-3e2,{"c":null}],"d":"x\"y\\u00e9\ud83d\ude00","e":true,"f":false}`,
		` {"a" : [ 1 , 2 ] } `, `"str"`, `12`, `-0`, `1.`, `01`, `{"a":1,}`, `[1,]`, `{"a"}`, `{"a":1}x`,
		`"\x"`, "\"a\tb\"", `{"a":tru}`, `9223372036854775808`, `-9223372036854775809`, `1e400`, ``, `   `,
		`{"a":{"b":{"c":[[[]]]}}}`, `"\ud800"`, `[1 2]`, `{"a":1 "b":2}`, "\"\xff\"",
	} {
		sameJSON(t, []byte(s))
	}
}

func TestLookupPath(t *testing.T) {
	doc := []byte(`{"dup": 1, "a": {"dup": 3, "b": [10, {"c": "x"}, [1, 2]], "dup": 4}, "k\"q": 5, "e": {}, "dup": 2}`)
	cases := []struct {
		path string
		want any
	}{
		{"a.b[0]", int64(10)}, {"a.b[1].c", "x"}, {"a.b[2][1]", int64(2)}, {"`k\"q`", int64(5)},
		{"dup", int64(2)}, {"a.dup", int64(4)}, {"a.b[3]", Undefined{}}, {"a.x", Undefined{}}, {"e.x", Undefined{}}, {"a.b.c", Undefined{}}, {"a.b[-1]", Undefined{}},
	}
	for _, c := range cases {
		e, err := ParseExpr(c.path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.Eval(&Env{Payload: doc})
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s = %#v, %v; want %#v", c.path, got, err, c.want)
		}
	}
}

func TestBadJSONIsAnError(t *testing.T) {
	e, _ := ParseExpr("a.b")
	_, err := e.Eval(&Env{Payload: []byte(`{"a":`)})
	if !errors.Is(err, ErrBadJSON) {
		t.Fatalf("got %v, want ErrBadJSON", err)
	}
}

func TestErrorPositions(t *testing.T) {
	_, err := Parse("SELECT a,\n  b +\n  FROM 'x'")
	var e *Error
	if !errors.As(err, &e) || e.Line != 3 || e.Column != 3 {
		t.Fatalf("got %#v", err)
	}
	if e.Error() != "line 3, column 3: unexpected keyword FROM" {
		t.Fatalf("message %q", e.Error())
	}
}

func TestTemplates(t *testing.T) {
	env := &Env{Row: true, Cols: []string{"device", "temp", "data", "n"}, Vals: []any{"d1", 21.5, map[string]any{"x": int64(3)}, nil},
		Topic: "devices/d1/telemetry", ClientID: "c1", Principal: "d1",
		WindowStart: time.Unix(10, 0), WindowEnd: time.Unix(20, 0)}
	cases := map[string]string{
		"devices/${device}/alerts":                        "devices/d1/alerts",
		"${topic(2)}-${clientid()}-${principal()}":        "d1-c1-d1",
		"t=${temp} x=${data.x} x2=${data.x * 2} n=${n}":   "t=21.5 x=3 x2=6 n=null",
		"${upper(device) || '!'} ${window_start()}":       "D1! 10000",
		"{\"v\": ${temp}, \"obj\": ${data}}":              "{\"v\": 21.5, \"obj\": {\"x\":3}}",
		"literal $${not} $x ${'}'}":                       "literal ${not} $x }",
		"${CASE WHEN temp > 20 THEN 'hot' ELSE 'ok' END}": "hot",
		"${get_or_default(missing, 'none')}":              "none",
		"static":                                          "static",
		"${ {'a': 1}['a'] }":                              "1",
	}
	for src, want := range cases {
		tp, err := ParseTemplate(src)
		if err != nil {
			t.Errorf("%q: %v", src, err)
			continue
		}
		got, err := tp.Render(env)
		if err != nil || got != want {
			t.Errorf("%q = %q, %v; want %q", src, got, err, want)
		}
	}
	for src, want := range map[string]string{
		"a/${":             "line 1, column 3: unterminated ${ in template",
		"a/${}":            "line 1, column 3: empty ${} in template",
		"x\ny ${1 +}":      "line 2, column 8: unexpected end of input, expected an expression",
		"${'abc}":          "line 1, column 1: unterminated quote in ${...}",
		"${avg(x)}":        "line 1, column 3: aggregate function avg is not allowed here",
		"ok ${nope(1)} ok": "line 1, column 6: unknown function nope",
	} {
		_, err := ParseTemplate(src)
		if err == nil || err.Error() != want {
			t.Errorf("%q: got %v, want %q", src, err, want)
		}
	}
	tp, _ := ParseTemplate("devices/${missing}/x")
	if _, err := tp.Render(env); !errors.Is(err, ErrEval) {
		t.Errorf("undefined substitution: got %v", err)
	}
}

func TestValueRoundTrip(t *testing.T) {
	for _, v := range []any{int64(2), 2.0, 2.5, "s", true, nil, []any{int64(1), "x"}, map[string]any{"a": 1.5}} {
		b, err := json.Marshal(Value{v})
		if err != nil {
			t.Fatal(err)
		}
		var got Value
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.V, v) {
			t.Errorf("%#v round-trips to %#v via %s", v, got.V, b)
		}
	}
}

func TestNormalize(t *testing.T) {
	got := Normalize(map[string]any{"a": Undefined{}, "b": []any{Undefined{}, math.NaN(), int64(1)}})
	b, _ := json.Marshal(got)
	if string(b) != `{"b":[null,1]}` {
		t.Fatalf("got %s", b)
	}
}

var fuzzPayloads = [][]byte{
	[]byte(`{"device_id":"d1","timestamp":"2024-01-01T00:00:00","data":{"temperature":21.5,"tags":["a"]}}`),
	[]byte(`[1,2]`), []byte(`not json`), []byte(`{"a":{"b":[{"c":1}]}}`),
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"SELECT * FROM 'devices/+/telemetry'",
		"SELECT data.temperature AS t, topic(2) AS d FROM 'devices/+/telemetry' WHERE data.temperature > 30 AND NOT (a IN (1,2))",
		"SELECT device_id, avg(data.t) FILTER (WHERE data.t > 1) AS a FROM 'x/#' GROUP BY device_id, HOPPINGWINDOW(ss, 10, 5) HAVING a > 2",
		"SELECT CASE a WHEN 1 THEN 'x' ELSE cast(b AS Int) END, a.b[0].c, `k` || 'x' LIKE '%y_' FROM 'a' -- c",
		"SELECT {'a': [1, -2.5e3]}, regexp_replace(s, '[0-9]', \"x\") FROM 'a' /* */",
	} {
		f.Add(s, fuzzPayloads[0])
	}
	f.Fuzz(func(t *testing.T, src string, payload []byte) {
		st, err := Parse(src)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Line < 1 || e.Column < 1 {
				t.Fatalf("error without a position: %v", err)
			}
			return
		}
		env := &Env{Payload: payload, Topic: "a/b", Aggs: make([]any, len(st.Aggs))}
		_, _ = st.Matches(env)
		env.Reset()
		_, _, _ = st.Select(env, nil, nil)
		for _, a := range st.Aggs {
			env.Reset()
			v, inc, err := a.AggArg(env)
			if err == nil && inc {
				acc := NewAcc(a)
				acc.Add(v, 1)
				acc.Add(v, 2)
				_ = acc.Result()
			}
		}
	})
}

func FuzzTemplate(f *testing.F) {
	for _, s := range []string{"devices/${device}/alerts", "${topic(2)}-$${x}-${'}'}", "${a.b[0] + 1}", "${"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tp, err := ParseTemplate(s)
		if err != nil {
			return
		}
		_, _ = tp.Render(&Env{Row: true, Cols: []string{"device", "a"}, Vals: []any{"d", map[string]any{"b": []any{int64(1)}}}})
	})
}

func FuzzJSON(f *testing.F) {
	for _, p := range fuzzPayloads {
		f.Add(p)
	}
	f.Add([]byte(`{"a":"\ud83d\ude00\n","b":[1e5,-0.5,true,false,null]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		sameJSON(t, b)
		if ValidJSON(b) {
			e, _ := ParseExpr("a.b[1].c")
			_, _ = e.Eval(&Env{Payload: b})
			_, _ = (&Env{Payload: b}).Members(func(string, any) {})
		}
	})
}
