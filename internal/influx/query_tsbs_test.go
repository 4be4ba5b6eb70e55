package influx

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/edgewise-iot/edgewise/internal/tsdb"
)

// The TSBS iot query templates, as tsbs_generate_queries -format influx
// writes them (cmd/tsbs_generate_queries/databases/influx/iot.go).
var tsbsIoT = map[string]string{
	"lastloc-single-truck": `SELECT "name", "driver", "latitude", "longitude" 
		FROM "readings" 
		WHERE ("name" = 'truck_1' or "name" = 'truck_3') 
		ORDER BY "time" 
		LIMIT 1`,
	"last-loc": `SELECT "latitude", "longitude" 
		FROM "readings" 
		WHERE "fleet"='East' 
		GROUP BY "name","driver" 
		ORDER BY "time" 
		LIMIT 1`,
	"low-fuel": `SELECT "name", "driver", "fuel_state" 
		FROM "diagnostics" 
		WHERE "fuel_state" <= 0.1 AND "fleet" = 'East' 
		GROUP BY "name" 
		ORDER BY "time" DESC 
		LIMIT 1`,
	"high-load": `SELECT "name", "driver", "current_load", "load_capacity" 
		FROM (SELECT  "current_load", "load_capacity" 
		 FROM "diagnostics" WHERE fleet = 'East' 
		 GROUP BY "name","driver" 
		 ORDER BY "time" DESC 
		 LIMIT 1) 
		WHERE "current_load" >= 0.9 * "load_capacity" 
		GROUP BY "name" 
		ORDER BY "time" DESC`,
	"stationary-trucks": `SELECT "name", "driver" 
		FROM(SELECT mean("velocity") as mean_velocity 
		 FROM "readings" 
		 WHERE time > '%[1]s' AND time <= '%[3]s' 
		 GROUP BY time(10m),"name","driver","fleet"  
		 LIMIT 1) 
		WHERE "fleet" = 'West' AND "mean_velocity" < 1 
		GROUP BY "name"`,
	"long-driving-sessions": `SELECT "name","driver" 
		FROM(SELECT count(*) AS ten_min 
		 FROM(SELECT mean("velocity") AS mean_velocity 
		  FROM readings 
		  WHERE "fleet" = 'West' AND time > '%[1]s' AND time <= '%[4]s' 
		  GROUP BY time(10m),"name","driver") 
		 WHERE "mean_velocity" > 1 
		 GROUP BY "name","driver") 
		WHERE ten_min_mean_velocity > 22`,
	"long-daily-sessions": `SELECT "name","driver" 
		FROM(SELECT count(*) AS ten_min 
		 FROM(SELECT mean("velocity") AS mean_velocity 
		  FROM readings 
		  WHERE "fleet" = 'West' AND time > '%[1]s' AND time <= '%[2]s' 
		  GROUP BY time(10m),"name","driver") 
		 WHERE "mean_velocity" > 1 
		 GROUP BY "name","driver") 
		WHERE ten_min_mean_velocity > 60`,
	"avg-vs-projected-fuel-consumption": `SELECT mean("fuel_consumption") AS "mean_fuel_consumption", mean("nominal_fuel_consumption") AS "nominal_fuel_consumption" 
		FROM "readings" 
		WHERE "velocity" > 1 
		GROUP BY "fleet"`,
	"avg-daily-driving-duration": `SELECT count("mv")/6 as "hours driven" 
		FROM (SELECT mean("velocity") as "mv" 
		 FROM "readings" 
		 WHERE time > '%[1]s' AND time < '%[2]s' 
		 GROUP BY time(10m),"fleet", "name", "driver") 
		WHERE time > '%[1]s' AND time < '%[2]s' 
		GROUP BY time(1d),"fleet", "name", "driver"`,
	"avg-daily-driving-session": `SELECT "elapsed" 
		INTO "random_measure2_1" 
		FROM (SELECT difference("difka"), elapsed("difka", 1m) 
		 FROM (SELECT "difka" 
		  FROM (SELECT difference("mv") AS difka 
		   FROM (SELECT floor(mean("velocity")/10)/floor(mean("velocity")/10) AS "mv" 
		    FROM "readings" 
		    WHERE "name"!='' AND time > '%[1]s' AND time < '%[2]s' 
		    GROUP BY time(10m), "name" fill(0)) 
		   GROUP BY "name") 
		  WHERE "difka"!=0 
		  GROUP BY "name") 
		 GROUP BY "name") 
		WHERE "difference" = -2 
		GROUP BY "name"; 
		SELECT mean("elapsed") 
		FROM "random_measure2_1" 
		WHERE time > '%[1]s' AND time < '%[2]s' 
		GROUP BY time(1d),"name"`,
	"avg-load": `SELECT mean("ml") AS mean_load_percentage 
		FROM (SELECT "current_load"/"load_capacity" AS "ml" 
		 FROM "diagnostics" 
		 GROUP BY "name", "fleet", "model") 
		GROUP BY "fleet", "model"`,
	"daily-activity": `SELECT count("ms")/144 
		FROM (SELECT mean("status") AS ms 
		 FROM "diagnostics" 
		 WHERE time >= '%[1]s' AND time < '%[2]s' 
		 GROUP BY time(10m), "model", "fleet") 
		WHERE time >= '%[1]s' AND time < '%[2]s' AND "ms"<1 
		GROUP BY time(1d), "model", "fleet"`,
	"breakdown-frequency": `SELECT count("state_changed") 
		FROM (SELECT difference("broken_down") AS "state_changed" 
		 FROM (SELECT floor(2*(sum("nzs")/count("nzs")))/floor(2*(sum("nzs")/count("nzs"))) AS "broken_down" 
		  FROM (SELECT "model", "status"/"status" AS nzs 
		   FROM "diagnostics" 
		   WHERE time >= '%[1]s' AND time < '%[2]s') 
		  WHERE time >= '%[1]s' AND time < '%[2]s' 
		  GROUP BY time(10m),"model") 
		 GROUP BY "model") 
		WHERE "state_changed" = 1 
		GROUP BY "model"`,
}

type truck struct{ name, fleet, driver, model string }

var (
	iotStart  = time.Date(2016, 1, 1, 0, 0, 0, 0, time.UTC)
	iotEnd    = iotStart.Add(36 * time.Hour)
	iotTrucks = func() []truck {
		var ts []truck
		fleets := []string{"East", "West", "North"}
		models := []string{"F-150", "G-2000", "H-2"}
		for i := 0; i < 9; i++ {
			name := fmt.Sprintf("truck_%d", i)
			if i == 8 {
				name = "" // TSBS leaves some tags out
			}
			ts = append(ts, truck{name, fleets[i%3], fmt.Sprintf("driver_%d", i%4), models[(i/3)%3]})
		}
		return ts
	}()
)

func (t truck) tags() []tsdb.Tag {
	tags := []tsdb.Tag{{Key: "fleet", Value: t.fleet}, {Key: "driver", Value: t.driver}, {Key: "model", Value: t.model},
		{Key: "load_capacity", Value: "1500"}, {Key: "nominal_fuel_consumption", Value: "15"}}
	if t.name != "" {
		tags = append(tags, tsdb.Tag{Key: "name", Value: t.name})
	}
	return tags
}

// loadIoT writes TSBS-shaped readings and diagnostics, one point per truck
// per minute; velocity is 0 in some 10-minute stretches, status is 0 often.
func loadIoT(t testing.TB, db *tsdb.DB) map[truck][]iotSample {
	rng := rand.New(rand.NewPCG(1, 2))
	all := map[truck][]iotSample{}
	var pts []tsdb.Point
	for ts := iotStart; ts.Before(iotEnd); ts = ts.Add(time.Minute) {
		for _, tr := range iotTrucks {
			vel := rng.Float64() * 100
			if rng.IntN(4) == 0 {
				vel = 0
			}
			s := iotSample{t: ts.UnixNano(), velocity: vel, status: float64(rng.IntN(3)), fuel: rng.Float64()}
			all[tr] = append(all[tr], s)
			pts = append(pts,
				tsdb.Point{Measurement: "readings", Tags: tr.tags(), Time: s.t, Fields: []tsdb.Field{
					{Key: "latitude", Value: tsdb.FloatValue(rng.Float64() * 90)}, {Key: "longitude", Value: tsdb.FloatValue(rng.Float64() * 180)},
					{Key: "velocity", Value: tsdb.FloatValue(vel)}, {Key: "fuel_consumption", Value: tsdb.FloatValue(rng.Float64() * 30)}}},
				tsdb.Point{Measurement: "diagnostics", Tags: tr.tags(), Time: s.t, Fields: []tsdb.Field{
					{Key: "fuel_state", Value: tsdb.FloatValue(s.fuel)}, {Key: "current_load", Value: tsdb.FloatValue(rng.Float64() * 1500)},
					{Key: "status", Value: tsdb.IntValue(int64(s.status))}}})
		}
	}
	if err := db.Write(context.Background(), pts); err != nil {
		t.Fatal(err)
	}
	return all
}

type iotSample struct {
	t                      int64
	velocity, status, fuel float64
}

type v1Response struct {
	Results []struct {
		Error  string `json:"error"`
		Series []struct {
			Name    string            `json:"name"`
			Tags    map[string]string `json:"tags"`
			Columns []string          `json:"columns"`
			Values  [][]any           `json:"values"`
		} `json:"series"`
	} `json:"results"`
}

func TestTSBSIoTQueries(t *testing.T) {
	cat := openCatalog(t)
	db, _ := cat.CreateDatabase(context.Background(), "benchmark", tsdb.RetentionPolicy{})
	data := loadIoT(t, db)
	if err := db.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	NewQueryAPI(cat, QueryOptions{}).Register(mux, nil)
	srv := httptestServer(t, mux)
	f := func(ts time.Time) string { return ts.Format(time.RFC3339) }
	args := []any{f(iotStart), f(iotEnd), f(iotStart.Add(10 * time.Minute)), f(iotStart.Add(4 * time.Hour))}
	results := map[string]v1Response{}
	for name, tmpl := range tsbsIoT {
		q := tmpl
		if strings.Contains(q, "%[") {
			q = fmt.Sprintf(tmpl, args...)
		}
		resp, err := http.PostForm(srv+"/query?db=benchmark", url.Values{"q": {q}})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var r v1Response
		if resp.StatusCode != 200 || json.Unmarshal(body, &r) != nil {
			t.Fatalf("%s: %d %s", name, resp.StatusCode, body)
		}
		for _, res := range r.Results {
			if res.Error != "" {
				t.Errorf("%s: %s", name, res.Error)
			}
		}
		results[name] = r
		if testing.Verbose() {
			out, _ := json.Marshal(r)
			t.Logf("%s: %.400s", name, out)
		}
	}

	// lastloc-single-truck: the earliest reading of truck_1 or truck_3.
	if s := results["lastloc-single-truck"].Results[0].Series; len(s) != 1 || len(s[0].Values) != 1 ||
		s[0].Values[0][0] != f(iotStart) || (s[0].Values[0][1] != "truck_1" && s[0].Values[0][1] != "truck_3") {
		t.Errorf("lastloc-single-truck: %+v", s)
	}
	// last-loc: one row per East truck (name, driver), its first point.
	if s := results["last-loc"].Results[0].Series; len(s) != 3 {
		t.Errorf("last-loc: want 3 East trucks, got %+v", s)
	}
	// low-fuel: per East truck, the latest reading with fuel_state <= 0.1.
	for _, s := range results["low-fuel"].Results[0].Series {
		var want int64
		for tr, smp := range data {
			if tr.fleet == "East" && tr.name == s.Tags["name"] {
				for _, x := range smp {
					if x.fuel <= 0.1 {
						want = x.t
					}
				}
			}
		}
		if got := s.Values[0][0]; got != time.Unix(0, want).UTC().Format(time.RFC3339Nano) {
			t.Errorf("low-fuel %s: got %v want %v", s.Tags["name"], got, time.Unix(0, want).UTC())
		}
	}
	// daily-activity: per (model, fleet) and day, the number of 10-minute
	// windows whose mean status is below 1, divided by 144.
	type mf struct{ model, fleet string }
	type win struct {
		k mf
		w int64
	}
	sums, counts := map[win]float64{}, map[win]float64{}
	for tr, smp := range data {
		for _, x := range smp {
			k := win{mf{tr.model, tr.fleet}, x.t / int64(10*time.Minute)}
			sums[k] += x.status
			counts[k]++
		}
	}
	want := map[string]float64{}
	for k, s := range sums {
		if s/counts[k] < 1 {
			day := time.Unix(0, k.w*int64(10*time.Minute)).UTC().Truncate(24 * time.Hour).Format(time.RFC3339)
			want[k.k.model+"/"+k.k.fleet+"/"+day] += 1.0 / 144
		}
	}
	got := map[string]float64{}
	for _, s := range results["daily-activity"].Results[0].Series {
		for _, v := range s.Values {
			if v[1] != nil {
				got[s.Tags["model"]+"/"+s.Tags["fleet"]+"/"+v[0].(string)] = v[1].(float64)
			}
		}
	}
	if len(want) == 0 || len(got) != len(want) {
		t.Errorf("daily-activity: got %d groups, want %d", len(got), len(want))
	}
	for k, w := range want {
		if math.Abs(got[k]-w) > 1e-9 {
			t.Errorf("daily-activity %s: got %v want %v", k, got[k], w)
		}
	}
	// avg-daily-driving-session wrote its intermediate measurement and read it back.
	if r := results["avg-daily-driving-session"].Results; len(r) != 2 || len(r[0].Series) != 1 || r[0].Series[0].Name != "result" {
		t.Errorf("avg-daily-driving-session: %+v", r)
	}
	// breakdown-frequency: one row per model.
	if s := results["breakdown-frequency"].Results[0].Series; len(s) != 3 {
		t.Errorf("breakdown-frequency: want 3 models, got %+v", s)
	}
}
