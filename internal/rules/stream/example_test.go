package stream_test

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/edgewise-iot/edgewise/internal/rules/stream"
)

func Example() {
	ctx := context.Background()
	rule, err := stream.Compile("hot", `
		SELECT device_id, avg(data.temperature) AS avg_temp, count(*) AS n
		  FROM 'devices/+/telemetry'
		 GROUP BY device_id, TUMBLINGWINDOW(ss, 10)
		HAVING avg_temp > 30`, stream.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	alerts, _ := stream.ParseTemplate("devices/${device_id}/alerts")
	for i, temp := range []float64{29, 33, 35, 20} {
		m := &stream.Message{
			Topic:   "devices/d1/telemetry",
			Payload: fmt.Appendf(nil, `{"device_id": "d1", "timestamp": "2024-01-01T00:00:%02d", "data": {"temperature": %g}}`, i*4, temp),
		}
		outs, err := rule.Process(ctx, m)
		if err != nil {
			fmt.Println(err)
			return
		}
		for _, o := range outs {
			row, _ := json.Marshal(o.Row)
			topic, _ := alerts.Render(&o)
			fmt.Println(topic, string(row), o.WindowEnd.Format(time.TimeOnly))
		}
	}
	_, err = stream.Compile("bad", "SELECT avg(x) FROM 'a/b'", stream.Options{})
	fmt.Println(err)
	// Output:
	// devices/d1/alerts {"device_id":"d1","avg_temp":32.333333333333336,"n":3} 00:00:10
	// line 1, column 8: aggregate function avg needs a window in GROUP BY
}
