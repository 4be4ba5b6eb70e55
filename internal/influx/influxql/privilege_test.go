package influxql

import "testing"

func TestRequiredPrivilege(t *testing.T) {
	for q, want := range map[string]Privilege{
		"SELECT mean(v) FROM m WHERE time > now() - 1h GROUP BY time(1m)": PrivRead,
		"SHOW DATABASES; SHOW MEASUREMENTS":                               PrivRead,
		"SELECT v INTO m2 FROM m":                                         PrivWrite,
		"SELECT v FROM m; DELETE FROM m WHERE time < 10":                  PrivWrite,
		"DROP SERIES FROM m WHERE host = 'a'":                             PrivWrite,
		"CREATE DATABASE x":                                               PrivAdmin,
		"SELECT v FROM m; DROP DATABASE x":                                PrivAdmin,
		"SELEC nonsense":                                                  PrivRead,
	} {
		if got := RequiredPrivilege(q); got != want {
			t.Errorf("%q: %v, want %v", q, got, want)
		}
	}
}
