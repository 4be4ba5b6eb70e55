package loadgen

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// WriteText writes r as a short human-readable report.
func (r *BenchResult) WriteText(w io.Writer) error {
	var b strings.Builder
	ver := "3.1.1"
	if r.Version == 5 {
		ver = "5.0"
	}
	if r.Scenario == ScenarioConn {
		fmt.Fprintf(&b, "scenario conn  addr %s  MQTT %s\n", r.Addr, ver)
		fmt.Fprintf(&b, "connected   %d of %d in %s  (%.0f connects/s)\n", r.Connected, r.Conns, r.ConnectElapsed.Round(time.Millisecond), r.ConnectRate)
		if r.ConnectLatency != nil {
			fmt.Fprintf(&b, "connect     %s\n", latencyText(*r.ConnectLatency))
		}
		fmt.Fprintf(&b, "held        %d\n", r.Held)
		writeRSS(&b, r)
		writeErrors(&b, r)
		_, err := io.WriteString(w, b.String())
		return err
	}
	if r.Scenario == ScenarioSlow {
		fmt.Fprintf(&b, "scenario slow  addr %s  MQTT %s  QoS 1  payload %d B  devices %d  rate %.0f msgs/s\n", r.Addr, ver, r.Size, r.Conns, r.TargetRate)
		fmt.Fprintf(&b, "connected   %d of %d in %s  (%.0f connects/s)\n", r.Connected, r.Conns, r.ConnectElapsed.Round(time.Millisecond), r.ConnectRate)
		fmt.Fprintf(&b, "measured    %s\n", r.Elapsed.Round(time.Millisecond))
		fmt.Fprintf(&b, "sent        %d msgs  %.0f msgs/s\n", r.Sent, r.SentRate)
		if r.AckLatency != nil {
			fmt.Fprintf(&b, "puback      %s  (%d acked)\n", latencyText(*r.AckLatency), r.Acked)
		}
		writeRSS(&b, r)
		writeErrors(&b, r)
		_, err := io.WriteString(w, b.String())
		return err
	}
	rate := "max"
	if r.TargetRate > 0 {
		rate = fmt.Sprintf("%.0f msgs/s", r.TargetRate)
	}
	fmt.Fprintf(&b, "scenario %s  addr %s  MQTT %s  QoS %d  payload %d B  pubs %d  subs %d  fanout %d  rate %s\n",
		r.Scenario, r.Addr, ver, r.QoS, r.Size, r.Pubs, r.Subs, r.Fanout, rate)
	fmt.Fprintf(&b, "measured    %s (after %s warm-up)\n", r.Elapsed.Round(time.Millisecond), r.Warmup)
	fmt.Fprintf(&b, "sent        %d msgs  %.0f msgs/s\n", r.Sent, r.SentRate)
	fmt.Fprintf(&b, "received    %d msgs  %.0f msgs/s  (arrivals in the period: %.0f msgs/s)\n", r.Received, r.ReceivedRate, r.ArrivedRate)
	lossPct := 0.0
	if r.Expected > 0 {
		lossPct = float64(r.Lost) / float64(r.Expected) * 100
	}
	fmt.Fprintf(&b, "loss        %d of %d expected (%.3f%%)\n", r.Lost, r.Expected, lossPct)
	fmt.Fprintf(&b, "latency     %s\n", latencyText(r.Latency))
	if r.TargetRate == 0 && r.QoS == 0 {
		b.WriteString("            (open loop at full speed: latency includes queueing; use --rate to measure it at a given load)\n")
	}
	if r.AckLatency != nil {
		fmt.Fprintf(&b, "puback      %s  (%d acked)\n", latencyText(*r.AckLatency), r.Acked)
	}
	if r.Note != "" {
		fmt.Fprintf(&b, "note        %s\n", r.Note)
	}
	writeErrors(&b, r)
	_, err := io.WriteString(w, b.String())
	return err
}

func writeRSS(b *strings.Builder, r *BenchResult) {
	if r.TargetRSSAfter > 0 {
		fmt.Fprintf(b, "target RSS  %.1f MiB -> %.1f MiB  (%.0f B per connection)\n",
			float64(r.TargetRSSBefore)/(1<<20), float64(r.TargetRSSAfter)/(1<<20), r.RSSPerConn)
	}
}

func writeErrors(b *strings.Builder, r *BenchResult) {
	fmt.Fprintf(b, "errors      %d", r.Errors)
	if r.FirstError != "" {
		fmt.Fprintf(b, " (first: %s)", r.FirstError)
	}
	b.WriteByte('\n')
}

func latencyText(l Latency) string {
	if l.Count == 0 {
		return "n/a"
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  max %s  (n=%d)",
		fmtDur(l.P50), fmtDur(l.P90), fmtDur(l.P99), fmtDur(l.Max), l.Count)
}

// fmtDur prints a duration with three significant digits.
func fmtDur(d time.Duration) string {
	switch {
	case d < time.Microsecond:
		return d.String()
	case d < time.Millisecond:
		return fmt.Sprintf("%.1fµs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}
