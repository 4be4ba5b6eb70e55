package app

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/edgewise-iot/edgewise/internal/config"
)

// startTestServerWith runs a whole server on random ports, in a temporary
// data directory unless mod sets one, with mod's configuration changes.
func startTestServerWith(t *testing.T, mod func(*config.Config)) *testServer {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.MQTT.Addr = "127.0.0.1:0"
	mod(&cfg)
	ctx := context.Background()
	a, err := New(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return &testServer{t: t, app: a, base: "http://" + a.HTTPAddr().String(), token: a.AdminToken()}
}

type dbStats struct {
	Series         int   `json:"series"`
	PointsWritten  int64 `json:"points_written"`
	SamplesWritten int64 `json:"samples_written"`
	RejectedSeries int64 `json:"rejected_series"`
	Blocks         int   `json:"blocks"`
	BlockSamples   int64 `json:"block_samples"`
}

// TestStatsListEveryDatabase: /api/v1/stats keeps the default database's
// counters at the top of "tsdb" and adds every database under "databases".
func TestStatsListEveryDatabase(t *testing.T) {
	s := startTestServerWith(t, func(c *config.Config) { c.Storage.MaxSeries = 2 })
	s.must("POST", "/api/v2/buckets", map[string]any{"name": "plant"}, nil, 201)
	s.must("POST", "/api/v2/write?bucket=edgewise&precision=s", "telemetry,device_id=d1 t=1 1700000000", nil, 204)
	// Three series into a database limited to two: one point is refused.
	s.must("POST", "/api/v2/write?bucket=plant&precision=s",
		"m,k=a v=1 1700000000\nm,k=b v=2,w=3 1700000000\nm,k=c v=3 1700000000", nil, 422)
	var body struct {
		TSDB struct {
			dbStats
			Databases map[string]dbStats `json:"databases"`
		} `json:"tsdb"`
	}
	s.must("GET", "/api/v1/stats", nil, &body, 200)
	st := body.TSDB
	if st.Series != 1 || st.PointsWritten != 1 {
		t.Fatalf("top-level tsdb stats are not the default database's: %+v", st.dbStats)
	}
	if len(st.Databases) != 2 || st.Databases["edgewise"] != st.dbStats {
		t.Fatalf("databases %+v, want edgewise (as the top level %+v) and plant", st.Databases, st.dbStats)
	}
	if p := st.Databases["plant"]; p.Series != 2 || p.PointsWritten != 2 || p.SamplesWritten != 3 || p.RejectedSeries != 1 {
		t.Fatalf("plant stats %+v", p)
	}
}

// TestDeleteOverHTTPReachesRollups: /api/v2/delete and InfluxQL DROP
// SERIES on the default database update its rollup before they answer.
func TestDeleteOverHTTPReachesRollups(t *testing.T) {
	s := startTestServerWith(t, func(c *config.Config) {
		c.Storage.Rollups = []config.Rollup{{Database: "edgewise_1m", Every: config.Duration(time.Minute)}}
	})
	// Minutes start at 1699999980 and 1700000040: d1 has two points in
	// the first and one in the second.
	s.must("POST", "/api/v2/write?bucket=edgewise&precision=s",
		"telemetry,device_id=d1 v=1 1699999990\ntelemetry,device_id=d1 v=3 1699999995\ntelemetry,device_id=d1 v=5 1700000045\n"+
			"telemetry,device_id=d2 v=7 1699999990", nil, 204)
	if err := s.app.ts.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	counts := func() string {
		var out struct {
			Results []struct {
				Series []struct {
					Tags   map[string]string `json:"tags"`
					Values [][]any           `json:"values"`
				} `json:"series"`
			} `json:"results"`
		}
		q := url.QueryEscape("SELECT v_count FROM telemetry GROUP BY device_id")
		s.must("GET", "/query?db=edgewise_1m&epoch=s&q="+q, nil, &out, 200)
		var parts []string
		for _, r := range out.Results {
			for _, se := range r.Series {
				for _, v := range se.Values {
					parts = append(parts, fmt.Sprintf("%s@%.0f=%v", se.Tags["device_id"], v[0], v[1]))
				}
			}
		}
		sort.Strings(parts)
		return strings.Join(parts, " ")
	}
	const before = "d1@1699999980=2 d1@1700000040=1 d2@1699999980=1"
	eventually(t, "rollup computed", func() bool { return counts() == before })

	// Delete d1's point at ...995: its window keeps one point.
	s.must("POST", "/api/v2/delete?org=x&bucket=edgewise", map[string]string{
		"start": "2023-11-14T22:13:15Z", "stop": "2023-11-14T22:13:15Z", "predicate": `_measurement="telemetry" AND device_id="d1"`,
	}, nil, 204)
	if got, want := counts(), "d1@1699999980=1 d1@1700000040=1 d2@1699999980=1"; got != want {
		t.Fatalf("after /api/v2/delete: %s, want %s", got, want)
	}
	q := url.QueryEscape("DROP SERIES FROM telemetry WHERE device_id = 'd1'")
	s.must("POST", "/query?db=edgewise&q="+q, nil, nil, 200)
	if got, want := counts(), "d2@1699999980=1"; got != want {
		t.Fatalf("after DROP SERIES: %s, want %s", got, want)
	}
}
