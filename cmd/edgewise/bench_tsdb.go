package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgewise-iot/edgewise/internal/tsdb"
)

type tsdbBenchResult struct {
	Devices        int                `json:"devices"`
	Fields         int                `json:"fields"`
	Points         int                `json:"points"`
	Values         int64              `json:"values"`
	Writers        int                `json:"writers"`
	Batch          int                `json:"batch"`
	Fsync          string             `json:"fsync"`
	IngestSeconds  float64            `json:"ingest_seconds"`
	ValuesPerSec   float64            `json:"values_per_sec"`
	PointsPerSec   float64            `json:"points_per_sec"`
	BlockBytes     int64              `json:"block_bytes"`
	BytesPerValue  float64            `json:"bytes_per_value"`
	DirBytes       int64              `json:"dir_bytes"`
	HeapPerSeries  float64            `json:"heap_bytes_per_series"`
	QueryMedianMs  map[string]float64 `json:"query_median_ms"`
	QueryP99Ms     map[string]float64 `json:"query_p99_ms"`
	CompactSeconds float64            `json:"flush_compact_seconds"`
}

func newBenchTSDBCmd() *cobra.Command {
	var (
		dir, fsync                         string
		devices, fields, points, batch, wr int
		queries                            int
		interval                           time.Duration
		asJSON                             bool
	)
	cmd := &cobra.Command{
		Use:   "tsdb",
		Short: "Benchmark the embedded time-series store on generated IoT data",
		Long: `Bench tsdb writes generated IoT telemetry (devices x fields x points, one
point per device every --interval, values a seeded random walk with two
decimals) straight into an embedded store with --writers concurrent writers
in batches of --batch points, then flushes and compacts, and reports the
ingest rate, bytes per stored value (block files / values), heap bytes per
series and the latency of typical queries.`,
		Example: `  edgewise bench tsdb --devices 1000 --fields 5 --points 2000 --writers 2 --fsync always`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if devices < 1 || fields < 1 || points < 1 || batch < 1 || wr < 1 || interval <= 0 || queries < 1 {
				return usageError(fmt.Errorf("devices, fields, points, batch, writers, queries and interval must be positive"))
			}
			if dir == "" {
				d, err := os.MkdirTemp("", "edgewise-bench-tsdb-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(d)
				dir = d
			}
			res, err := runTSDBBench(cmd.Context(), dir, tsdb.FsyncPolicy(fsync), devices, fields, points, batch, wr, queries, interval)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "ingest: %d values (%d devices x %d fields x %d points), %d writers, batch %d, fsync %s\n",
				res.Values, devices, fields, points, wr, batch, fsync)
			fmt.Fprintf(w, "  %.0f values/s, %.0f points/s (%.2fs)\n", res.ValuesPerSec, res.PointsPerSec, res.IngestSeconds)
			fmt.Fprintf(w, "storage after flush+compaction (%.2fs): %d block bytes, %.3f bytes/value, %d bytes in the directory\n",
				res.CompactSeconds, res.BlockBytes, res.BytesPerValue, res.DirBytes)
			fmt.Fprintf(w, "heap per series after flush: %.0f bytes\n", res.HeapPerSeries)
			fmt.Fprintf(w, "queries (%d runs each): median / p99 ms\n", queries)
			for _, name := range benchQueryNames {
				fmt.Fprintf(w, "  %-28s %8.3f / %8.3f\n", name, res.QueryMedianMs[name], res.QueryP99Ms[name])
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "data directory (default: a temporary directory, removed afterwards)")
	f.StringVar(&fsync, "fsync", "always", "WAL fsync policy: always, interval or never")
	f.IntVar(&devices, "devices", 1000, "devices (series)")
	f.IntVar(&fields, "fields", 5, "float fields per point")
	f.IntVar(&points, "points", 1000, "points per device")
	f.IntVar(&batch, "batch", 5000, "points per write")
	f.IntVar(&wr, "writers", 2, "concurrent writers")
	f.IntVar(&queries, "queries", 20, "runs of each query")
	f.DurationVar(&interval, "interval", 10*time.Second, "time between a device's points")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

var benchQueryNames = []string{"raw 1h one device", "mean 1m over 1h one device", "max 1h all devices one field", "count all"}

func runTSDBBench(ctx context.Context, dir string, fsync tsdb.FsyncPolicy, devices, fields, points, batch, writers, queries int, interval time.Duration) (*tsdbBenchResult, error) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heap0 := ms.HeapAlloc
	db, err := tsdb.Open(ctx, tsdb.Options{Dir: dir, Fsync: fsync, FlushInterval: time.Hour, MaxHeadSamples: 16 << 20})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	names := make([]string, fields)
	for i := range names {
		names[i] = fmt.Sprintf("f%d", i)
	}
	tags := make([][]tsdb.Tag, devices)
	for d := range tags {
		tags[d] = []tsdb.Tag{{Key: "device_id", Value: fmt.Sprintf("dev-%06d", d)}}
	}
	var wg sync.WaitGroup
	errc := make(chan error, writers)
	start := time.Now()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w)+1, 42))
			var mine []int
			for d := w; d < devices; d += writers {
				mine = append(mine, d)
			}
			if len(mine) == 0 {
				return
			}
			level := make([]float64, len(mine)*fields)
			for i := range level {
				level[i] = 20 + rng.Float64()*10
			}
			buf := make([]tsdb.Point, 0, batch)
			for p := 0; p < points; p++ {
				ts := t0 + int64(p)*int64(interval)
				for i, d := range mine {
					fs := make([]tsdb.Field, fields)
					for k := range fs {
						v := &level[i*fields+k]
						*v += (rng.Float64() - 0.5) * 0.2
						fs[k] = tsdb.Field{Key: names[k], Value: tsdb.FloatValue(math.Round(*v*100) / 100)}
					}
					buf = append(buf, tsdb.Point{Measurement: "telemetry", Tags: tags[d], Fields: fs, Time: ts})
					if len(buf) == batch {
						if err := db.Write(ctx, buf); err != nil {
							errc <- err
							return
						}
						buf = buf[:0]
					}
				}
			}
			if len(buf) > 0 {
				if err := db.Write(ctx, buf); err != nil {
					errc <- err
				}
			}
		}(w)
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return nil, err
	}
	el := time.Since(start).Seconds()
	values := int64(devices) * int64(fields) * int64(points)
	res := &tsdbBenchResult{Devices: devices, Fields: fields, Points: points, Values: values, Writers: writers, Batch: batch,
		Fsync: string(fsync), IngestSeconds: el, ValuesPerSec: float64(values) / el, PointsPerSec: float64(values/int64(fields)) / el,
		QueryMedianMs: map[string]float64{}, QueryP99Ms: map[string]float64{}}
	c0 := time.Now()
	if err := db.Flush(ctx); err != nil {
		return nil, err
	}
	if _, err := db.Compact(ctx); err != nil {
		return nil, err
	}
	res.CompactSeconds = time.Since(c0).Seconds()
	st := db.Stats()
	res.BlockBytes = st.BlockBytes
	res.BytesPerValue = float64(st.BlockBytes) / float64(values)
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			res.DirBytes += fi.Size()
		}
		return nil
	})
	runtime.GC()
	runtime.ReadMemStats(&ms)
	res.HeapPerSeries = float64(int64(ms.HeapAlloc)-int64(heap0)) / float64(devices)
	end := t0 + int64(points)*int64(interval)
	hour := int64(time.Hour)
	qs := map[string]func(i int) tsdb.Query{
		"raw 1h one device": func(i int) tsdb.Query {
			return tsdb.Query{Measurement: "telemetry", Tags: tags[i%devices], Field: "f0", Start: end - hour, End: end}
		},
		"mean 1m over 1h one device": func(i int) tsdb.Query {
			return tsdb.Query{Measurement: "telemetry", Tags: tags[i%devices], Start: end - hour, End: end, Every: time.Minute, Fn: tsdb.Mean}
		},
		"max 1h all devices one field": func(int) tsdb.Query {
			return tsdb.Query{Measurement: "telemetry", Field: "f0", Start: t0, End: end, Every: time.Hour, Fn: tsdb.Max}
		},
		"count all": func(int) tsdb.Query {
			return tsdb.Query{Measurement: "telemetry", Start: t0, End: end, Every: time.Duration(end - t0 + 1), Fn: tsdb.Count}
		},
	}
	for _, name := range benchQueryNames {
		lat := make([]float64, 0, queries)
		for i := 0; i < queries; i++ {
			q0 := time.Now()
			if _, err := db.Query(ctx, qs[name](i*7919)); err != nil {
				return nil, fmt.Errorf("query %s: %w", name, err)
			}
			lat = append(lat, float64(time.Since(q0).Microseconds())/1000)
		}
		slices.Sort(lat)
		res.QueryMedianMs[name] = lat[len(lat)/2]
		res.QueryP99Ms[name] = lat[min(len(lat)-1, len(lat)*99/100)]
	}
	return res, nil
}
