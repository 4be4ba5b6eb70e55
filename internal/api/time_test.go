package api

import (
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"now", now, true},
		{"-1h", now.Add(-time.Hour), true},
		{"-90s", now.Add(-90 * time.Second), true},
		{"-7d", now.Add(-7 * 24 * time.Hour), true},
		{"-1w2d3h", now.Add(-(9*24 + 3) * time.Hour), true},
		{"+30m", now.Add(30 * time.Minute), true},
		{"2026-11-20T10:00:00Z", time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC), true},
		{"2026-11-20T10:00:00.5+02:00", time.Date(2026, 11, 20, 8, 0, 0, 5e8, time.UTC), true},
		{"yesterday", time.Time{}, false},
		{"-", time.Time{}, false},
		{"-1h2d", time.Time{}, false},
		{"-d", time.Time{}, false},
		{"1h", time.Time{}, false}, // relative times carry a sign
		{"", time.Time{}, false},
	}
	for _, tc := range cases {
		got, err := ParseTime(tc.in, now)
		if (err == nil) != tc.ok || (tc.ok && !got.Equal(tc.want)) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestParseDuration(t *testing.T) {
	cases := map[string]time.Duration{"1m": time.Minute, "1d": 24 * time.Hour, "2w": 14 * 24 * time.Hour, "1d12h": 36 * time.Hour, "-5m": -5 * time.Minute}
	for in, want := range cases {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "d", "5x", "1.5d", "99999999999d", "106752d", "106751d24h"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) accepted", in)
		}
	}
}

func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"now", "-1h", "-7d", "-1w2d3h", "2026-11-20T10:00:00Z", "+3d", "-9223372036854775807ns"} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = ParseTime(s, now)
		_, _ = ParseDuration(s)
	})
}
