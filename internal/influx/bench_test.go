package influx

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edgewise-iot/edgewise/internal/influx/lineproto"
	"github.com/edgewise-iot/edgewise/internal/tsdb"
)

// tsbsLikeBody returns n lines shaped like TSBS iot "readings" (five tags,
// ten fields) for 100 trucks, 10 s apart.
func tsbsLikeBody(n int, t0 int64) []byte {
	var b strings.Builder
	for i := 0; i < n; i++ {
		truck := i % 100
		ts := t0 + int64(i/100)*10e9
		fmt.Fprintf(&b, "readings,name=truck_%d,fleet=South,driver=Trish,model=H-2,device_version=v2.3 load_capacity=1500,fuel_capacity=150,nominal_fuel_consumption=12,latitude=%.5f,longitude=%.5f,elevation=%d,velocity=%d,heading=%d,grade=%d,fuel_consumption=%d %d\n",
			truck, 52.31854+float64(i%7)*0.001, 4.72037-float64(i%5)*0.002, 100+i%50, i%80, i%360, i%10, 25+i%3, ts)
	}
	return []byte(b.String())
}

func BenchmarkPoints(b *testing.B) {
	body := tsbsLikeBody(5000, 1451606400000000000)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		pts, bad := Points(body, lineproto.Nanosecond, 0)
		if len(bad) > 0 || len(pts) != 5000 {
			b.Fatal(bad)
		}
	}
	b.ReportMetric(float64(b.N*5000*10)/b.Elapsed().Seconds(), "values/s")
}

// BenchmarkWriteBody parses and stores 5000-line TSBS-like bodies.
func BenchmarkWriteBody(b *testing.B) {
	for _, policy := range []tsdb.FsyncPolicy{tsdb.FsyncNever, tsdb.FsyncAlways} {
		b.Run(string(policy), func(b *testing.B) {
			db, err := tsdb.Open(context.Background(), tsdb.Options{Dir: b.TempDir(), Fsync: policy, FlushInterval: time.Hour, MaxHeadSamples: 1 << 30})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			bodies := make([][]byte, 16)
			for i := range bodies {
				bodies[i] = tsbsLikeBody(5000, 1451606400000000000+int64(i)*500e9)
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					pts, _ := Points(bodies[i%len(bodies)], lineproto.Nanosecond, 0)
					if rej, err := db.WritePartial(context.Background(), pts); err != nil || len(rej) > 0 {
						b.Fatal(err, rej)
					}
					i++
				}
			})
			b.ReportMetric(float64(b.N*5000*10)/b.Elapsed().Seconds(), "values/s")
		})
	}
}
