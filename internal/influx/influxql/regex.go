package influxql

import (
	"regexp"
	"strings"

	"github.com/edgewise-iot/edgewise/internal/tsdb"
)

func regexpQuote(s string) string { return regexp.QuoteMeta(s) }

func compileRegexp(s string) (*regexp.Regexp, error) { return regexp.Compile(s) }

// compareTags orders tag sets (sorted by key) lexicographically.
func compareTags(a, b []tsdb.Tag) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if c := strings.Compare(a[i].Key, b[i].Key); c != 0 {
			return c
		}
		if c := strings.Compare(a[i].Value, b[i].Value); c != 0 {
			return c
		}
	}
	return len(a) - len(b)
}
