package influxql

import (
	"strings"
	"testing"
	"time"
)

func TestParseStatements(t *testing.T) {
	for _, q := range []string{
		`SELECT "a", b AS c, mean("x") FROM "db"."rp"."m" WHERE time > now() - 1h AND "t" =~ /x\/y/ GROUP BY time(5m, 1m), "t" fill(previous) ORDER BY time DESC LIMIT 10 OFFSET 2 SLIMIT 3 SOFFSET 1`,
		`select * from m; SHOW DATABASES;;`,
		`SELECT count(*) AS c FROM (SELECT mean(v) AS m FROM (SELECT v FROM m) GROUP BY time(10m), "n") WHERE m > 1 GROUP BY "n"`,
		`SELECT x::field, t::tag FROM db..m, /re/ WHERE x != -1.5e3 AND NOT_A_KEYWORD <> 'y'`,
		`SHOW TAG VALUES ON db FROM m WITH KEY =~ /h.*/ WHERE a = 'b' LIMIT 1`,
		`SHOW MEASUREMENTS WITH MEASUREMENT = cpu LIMIT 2 OFFSET 1`,
		`CREATE DATABASE "x" WITH DURATION 30d REPLICATION 1 SHARD DURATION 1d NAME "r"`,
		`CREATE DATABASE y WITH DURATION INF`,
		`DROP DATABASE "x"`,
		`SELECT mean(v) FROM m WHERE time >= '2020-01-01T00:00:00Z' AND time <= 1577836800000000000 GROUP BY * fill(-1.5)`,
		"SELECT v FROM m -- comment\n/* block */ WHERE a = 'it\\'s'",
	} {
		if _, err := ParseQuery(q); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ q, want string }{
		{`SELECT`, "found EOF, expected identifier, string, number, bool at line 1, char 7"},
		{`SELECT v`, "found EOF, expected FROM at line 1, char 9"},
		{`SELECT v FROM m WHERE`, "found EOF"},
		{`SELECT v FROM m tz('Mars/Olympus')`, "unknown time zone Mars/Olympus"},
		{`SELECT v FROM m GROUP BY time(0s)`, "positive interval"},
		{"SELECT v\nFROM m WHERE a = 'x", "unterminated string at line 2, char 18"},
		{`SELECT v FROM m WHERE a =~ /[/`, "invalid regex"},
		{`SELECT v FROM m ORDER BY v`, "only ORDER BY time"},
		{`SHOW FOO`, "found FOO"},
		{`SELECT v FROM m fill(sometimes)`, "found sometimes"},
		{`SELECT v FROM m LIMIT -1`, "expected integer"},
		{``, "empty query"},
		{`SELECT v FROM m SELECT`, "found SELECT, expected EOF, ;"},
		{"SELECT " + strings.Repeat("(", 200) + "1 FROM m", "nested too deeply"},
	} {
		_, err := ParseQuery(c.q)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want %q", c.q, err, c.want)
		}
	}
}

func TestParseDetails(t *testing.T) {
	stmts, err := ParseQuery(`SELECT mean(v) FROM a.b.c WHERE time > now() - 90m GROUP BY time(1h30m, -15m), h fill(linear) ORDER BY time DESC`)
	if err != nil {
		t.Fatal(err)
	}
	st := stmts[0].(*SelectStatement)
	m := st.Sources[0].(*Measurement)
	if m.Database != "a" || m.RetentionPolicy != "b" || m.Name != "c" {
		t.Errorf("source %+v", m)
	}
	if st.Interval != 90*time.Minute || st.Offset != 75*time.Minute || st.Fill != FillLinear || !st.Desc || st.GroupTags[0] != "h" {
		t.Errorf("statement %+v", st)
	}
	e, err := ParseExpr(`a + b * 2 - 3 / c = 1 AND x =~ /y/ OR NOT_KW != 'z'`)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ExprString(e), `a + b * 2 - 3 / c = 1 AND x =~ /y/ OR NOT_KW != 'z'`; got != want {
		t.Errorf("got %s want %s", got, want)
	}
	be := e.(*BinaryExpr)
	if be.Op != "OR" || be.LHS.(*BinaryExpr).Op != "AND" {
		t.Errorf("precedence wrong: %#v", be)
	}
}

func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		`SELECT mean("v") FROM "m" WHERE time > now() - 1h AND t =~ /a/ GROUP BY time(1m), * fill(0) ORDER BY time DESC LIMIT 1`,
		`SELECT count(*) AS c FROM (SELECT v FROM m) WHERE v > 1; SHOW TAG VALUES WITH KEY IN (a, b)`,
		`CREATE DATABASE x WITH DURATION 1d`, `SELECT a::field + 1.5e3 FROM db.rp./x/`, "'\"\\",
		`SELECT mean(v) FROM m WHERE time >= '2020-03-29' GROUP BY time(1d), "h"::tag fill(null) tz('Europe/Paris')`,
		`SELECT top(v, h, 3), x FROM m GROUP BY time(1h); SELECT bottom(v, 2) FROM m tz('UTC')`,
		`SELECT count(distinct(v)), integral(v, 1m) FROM m; SELECT distinct(v) FROM m; SELECT max(v), h FROM m`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		stmts, err := ParseQuery(q)
		if err != nil {
			return
		}
		for _, st := range stmts {
			if st == nil {
				t.Fatal("nil statement without error")
			}
		}
	})
}
