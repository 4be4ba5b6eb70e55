package influx

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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

// BenchmarkTSBSFile replays a TSBS iot line protocol file (path in
// EDGEWISE_TSBS_FILE, e.g. written by scripts/bench-tsdb.sh into
// TSBS_WORK) through parsing and storage as tsbs_load_influx sends it: 5000
// lines per body, 4 writers, fsync always. One op is the whole file into a
// new database; run it pinned to one core (taskset -c 0) to compare CPU
// cost per row.
func BenchmarkTSBSFile(b *testing.B) {
	path := os.Getenv("EDGEWISE_TSBS_FILE")
	if path == "" {
		b.Skip("set EDGEWISE_TSBS_FILE to a TSBS iot influx file")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	var bodies [][]byte
	rows := 0
	for len(data) > 0 {
		end, n := 0, 0
		for n < 5000 && end < len(data) {
			i := bytes.IndexByte(data[end:], '\n')
			if i < 0 {
				end = len(data)
			} else {
				end += i + 1
			}
			n++
		}
		bodies = append(bodies, data[:end])
		data = data[end:]
		rows += n
	}
	cpu := func() time.Duration { // user+system time of the process
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	var used time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		db, err := tsdb.Open(context.Background(), tsdb.Options{Dir: b.TempDir(), Fsync: tsdb.FsyncAlways})
		if err != nil {
			b.Fatal(err)
		}
		c0 := cpu()
		var next atomic.Int64
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pb := new(pointBuf) // as the handler's pool
				for {
					k := int(next.Add(1)) - 1
					if k >= len(bodies) {
						return
					}
					pts, bad := parsePoints(pb, bodies[k], lineproto.Nanosecond, 0)
					if len(bad) > 0 {
						b.Error(bad[0])
						return
					}
					if rej, err := db.WritePartial(context.Background(), pts); err != nil || len(rej) > 0 {
						b.Error(err, rej)
						return
					}
				}
			}()
		}
		wg.Wait()
		b.StopTimer()
		used += cpu() - c0
		db.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N*rows)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(used.Nanoseconds())/float64(b.N*rows), "cpu-ns/row")
}
