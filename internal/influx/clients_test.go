package influx

import (
	"bytes"
	"compress/gzip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgewise-iot/edgewise/internal/testenv"
)

// readBack runs an InfluxQL query over HTTP and returns the JSON body.
func readBack(t *testing.T, s *testServer, db, q string) string {
	t.Helper()
	code, body := s.post(t, "/query?db="+url.QueryEscape(db)+"&q="+url.QueryEscape(q), "",
		map[string]string{"Authorization": "Token " + testToken})
	if code != 200 {
		t.Fatalf("%s: %d %s", q, code, body)
	}
	return body
}

// TestWriteWithCurl writes line protocol with curl, plain and gzip, to the
// v1 and v2 endpoints, and reads it back through /query.
func TestWriteWithCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		testenv.Missing(t, "curl (apt-get install curl)")
		return
	}
	s := newTestServer(t, false, nil)
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain.lp")
	if err := os.WriteFile(plain, []byte("# a comment\nweather,site=oslo\\ north temp=-3.5,ok=true,note=\"snow, \\\"light\\\"\" 1577836800\n"+
		"weather,site=bergen temp=7i 1577836810\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("weather,site=oslo\\ north temp=-4.25 1577836820000\nweather,site=oslo\\ north temp=-5 1577836830000\n"))
	zw.Close()
	zipped := filepath.Join(dir, "more.lp.gz")
	if err := os.WriteFile(zipped, gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.lp")
	if err := os.WriteFile(bad, []byte("weather,site=x temp=1 1577836840000000000\nweather temp=\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(curl, append([]string{"-sS", "-w", "\n%{http_code}"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := run("-XPOST", s.URL+"/write?db=edgewise&precision=s", "-u", "me:"+testToken, "--data-binary", "@"+plain); !strings.HasSuffix(out, "204") {
		t.Fatalf("plain v1 write: %s", out)
	}
	if out := run("-XPOST", s.URL+"/api/v2/write?org=any&bucket=edgewise&precision=ms", "-H", "Authorization: Token "+testToken,
		"-H", "Content-Encoding: gzip", "-H", "Content-Type: text/plain; charset=utf-8", "--data-binary", "@"+zipped); !strings.HasSuffix(out, "204") {
		t.Fatalf("gzip v2 write: %s", out)
	}
	// A bad line: 400 naming it, the good line kept.
	out := run("-XPOST", s.URL+"/write?db=edgewise", "-H", "Authorization: Token "+testToken, "--data-binary", "@"+bad)
	if !strings.HasSuffix(out, "400") || !strings.Contains(out, `"error"`) || !strings.Contains(out, "weather temp=") {
		t.Fatalf("bad line: %s", out)
	}
	if out := run("-XPOST", s.URL+"/write?db=edgewise", "--data-binary", "@"+plain); !strings.HasSuffix(out, "401") {
		t.Fatalf("no credentials: %s", out)
	}
	got := readBack(t, s, "edgewise", `SELECT temp, ok, note FROM weather GROUP BY site`)
	for _, want := range []string{
		`"tags":{"site":"bergen"},"columns":["time","temp","ok","note"],"values":[["2020-01-01T00:00:10Z",7,null,null]]`,
		`"tags":{"site":"oslo north"},"columns":["time","temp","ok","note"],"values":[["2020-01-01T00:00:00Z",-3.5,true,"snow, \"light\""],` +
			`["2020-01-01T00:00:20Z",-4.25,null,null],["2020-01-01T00:00:30Z",-5,null,null]]`,
		`"tags":{"site":"x"},"columns":["time","temp","ok","note"],"values":[["2020-01-01T00:00:40Z",1,null,null]]`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("read back %s\nwant it to contain %s", got, want)
		}
	}
}

// TestWriteWithInfluxCLI imports a DML file (plain and gzip) with Debian's
// influx 1.x shell (-import, which also runs the DDL section), inserts a
// point with -execute INSERT, and reads all of it back through /query.
func TestWriteWithInfluxCLI(t *testing.T) {
	bin, err := exec.LookPath("influx")
	if err != nil {
		testenv.Missing(t, "the influx CLI (apt-get install influxdb-client)")
		return
	}
	s := newTestServer(t, false, nil)
	u, _ := url.Parse(s.URL)
	dir := t.TempDir()
	dump := "# DDL\nCREATE DATABASE fleet\n\n# DML\n# CONTEXT-DATABASE: fleet\n" +
		"truck,name=t1,fleet=north fuel=0.5,load=1200i 1577836800\n" +
		"truck,name=t1,fleet=north fuel=0.45,load=1300i 1577836860\n" +
		"truck,name=t2,fleet=south fuel=0.9,load=0i 1577836800\n"
	plain := filepath.Join(dir, "dump.txt")
	if err := os.WriteFile(plain, []byte(dump), 0o644); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("# DML\n# CONTEXT-DATABASE: fleet\ntruck,name=t2,fleet=south fuel=0.85,load=10i 1577836860\n"))
	zw.Close()
	zipped := filepath.Join(dir, "dump.txt.gz")
	if err := os.WriteFile(zipped, gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		base := []string{"-host", u.Hostname(), "-port", u.Port(), "-username", "cli", "-password", testToken}
		out, err := exec.Command(bin, append(base, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("influx %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := run("-import", "-path", plain, "-precision", "s"); !strings.Contains(out, "Processed 3 inserts") || !strings.Contains(out, "Failed 0 inserts") {
		t.Fatalf("import: %s", out)
	}
	if out := run("-import", "-path", zipped, "-compressed", "-precision", "s"); !strings.Contains(out, "Processed 1 inserts") || !strings.Contains(out, "Failed 0 inserts") {
		t.Fatalf("compressed import: %s", out)
	}
	run("-database", "fleet", "-execute", "INSERT truck,name=t3,fleet=north fuel=0.1,load=5i 1577836920000000000")
	got := readBack(t, s, "fleet", `SELECT last(fuel), sum(load) FROM truck GROUP BY "name"`)
	for _, want := range []string{
		`"tags":{"name":"t1"},"columns":["time","last","sum"],"values":[["1970-01-01T00:00:00Z",0.45,2500]]`,
		`"tags":{"name":"t2"},"columns":["time","last","sum"],"values":[["1970-01-01T00:00:00Z",0.85,10]]`,
		`"tags":{"name":"t3"},"columns":["time","last","sum"],"values":[["1970-01-01T00:00:00Z",0.1,5]]`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("read back %s\nwant it to contain %s", got, want)
		}
	}
	// The shell reports a write the server refused.
	if out, err := exec.Command(bin, "-host", u.Hostname(), "-port", u.Port(), "-username", "cli", "-password", testToken,
		"-database", "fleet", "-execute", "INSERT truck,name=t1,fleet=north fuel=\"full\"").CombinedOutput(); err == nil && !strings.Contains(string(out), "ERR") {
		t.Errorf("type conflict through the shell: %v %s", err, out)
	}
}
