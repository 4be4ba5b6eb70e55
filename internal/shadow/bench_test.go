package shadow

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewise-iot/edgewise/internal/store"
)

func benchSQLiteStore(b *testing.B) (*Store, *SQLBackend) {
	b.Helper()
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, filepath.Join(b.TempDir(), "meta.db"))
	if err != nil {
		b.Fatal(err)
	}
	be, err := NewSQLBackend(ctx, db)
	if err != nil {
		b.Fatal(err)
	}
	s, err := NewWithBackend(be, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := s.Close(ctx); err != nil {
			b.Error(err)
		}
		db.Close()
	})
	return s, be
}

// statePatch is a typical device state report (the seed's IoTDevice state).
func statePatch(i int) map[string]any {
	return map[string]any{
		"temperature": 20 + float64(i%100)/10,
		"humidity":    40 + float64(i%50),
		"battery":     map[string]any{"level": float64(i % 100), "charging": i%2 == 0},
		"firmware":    "1.4.2",
		"status":      "online",
	}
}

// BenchmarkUpdateReported measures state updates through the whole store,
// SQLite persistence included (the background flusher runs during the
// benchmark, and Close flushes the rest inside the timed region's cleanup).
func BenchmarkUpdateReported(b *testing.B) {
	b.Run("one-thing", func(b *testing.B) {
		s, _ := benchSQLiteStore(b)
		ctx := context.Background()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := s.UpdateReported(ctx, "dev", statePatch(i), time.Time{}); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	for _, things := range []int{1_000, 10_000} {
		b.Run(fmt.Sprintf("parallel-%d-things", things), func(b *testing.B) {
			s, _ := benchSQLiteStore(b)
			ctx := context.Background()
			names := make([]string, things)
			for i := range names {
				names[i] = fmt.Sprintf("dev-%05d", i)
			}
			var next atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := int(next.Add(1))
					if _, err := s.UpdateReported(ctx, names[i%things], statePatch(i), time.Time{}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			if err := s.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkSQLBackendSave shows why updates are coalesced: the cost per
// document of one transaction per document versus one per batch.
func BenchmarkSQLBackendSave(b *testing.B) {
	for _, batch := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("batch-%d", batch), func(b *testing.B) {
			_, be := benchSQLiteStore(b)
			ctx := context.Background()
			raw, _ := encode(statePatch(1))
			recs := make([]Record, batch)
			now := time.Now()
			for i := range recs {
				recs[i] = Record{Thing: fmt.Sprintf("dev-%05d", i), Reported: raw, UpdatedAt: now}
			}
			b.ReportAllocs()
			v := int64(0)
			for b.Loop() {
				v++
				for i := range recs {
					recs[i].Version = v
				}
				if err := be.Save(ctx, recs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/doc")
		})
	}
}
