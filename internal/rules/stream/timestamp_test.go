package stream

import (
	"strings"
	"testing"
	"time"
)

// slowISO is the layout loop alone.
func slowISO(s string) (int64, bool) {
	for _, l := range layouts {
		if t, err := time.Parse(l, strings.TrimSpace(s)); err == nil {
			return t.UnixNano(), true
		}
	}
	return 0, false
}

var isoSeeds = []string{
	"2024-01-01T00:00:00", "2024-01-01T00:00:00.123456", "2024-01-01 12:30:45.5", "2024-02-29T23:59:59.999999999Z",
	"2023-02-29T00:00:00", "2024-01-01T00:00:00+05:30", "2024-01-01T00:00:00.1-0800", "2024-01-01 00:00:00+01:00",
	"2024-01-01T10:20", "2024-01-01T10:20Z", "2024-01-01T10:20+02:00", "2024-01-01", "2024-13-01", "2024-01-01T24:00:00",
	"2024-01-01T00:00:60", "2024-01-01T00:00:00.1234567891", "2024-01-01T00:00:00z", "2024-01-01T00:00:00+2400",
}

func TestParseISOAgreesWithTimeParse(t *testing.T) {
	for _, s := range isoSeeds {
		if ns, ok := parseISO(s); ok {
			if want, wok := slowISO(s); !wok || want != ns {
				t.Errorf("%q: fast %d, time.Parse %d (%v)", s, ns, want, wok)
			}
		}
	}
	if _, ok := parseISO("2024-01-01T00:00:00.123456"); !ok {
		t.Error("the seed's timestamp form is not on the fast path")
	}
}

func FuzzParseISO(f *testing.F) {
	for _, s := range isoSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ns, ok := parseISO(s)
		if !ok {
			return
		}
		if want, wok := slowISO(s); !wok || want != ns {
			t.Fatalf("%q: fast %d, time.Parse %d (%v)", s, ns, want, wok)
		}
		if ns2, ok2 := parseISO([]byte(s)); !ok2 || ns2 != ns {
			t.Fatalf("%q: bytes and string paths differ", s)
		}
	})
}
