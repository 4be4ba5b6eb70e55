package app

import (
	"context"
	"testing"

	"github.com/edgewise-iot/edgewise/internal/config"
)

// startTestServerWith is startTestServer with a configuration change.
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
