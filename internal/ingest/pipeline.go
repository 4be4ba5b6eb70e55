package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker"
	"github.com/edgewise-iot/edgewise/internal/tsdb"
)

// PointWriter stores points durably (the time-series store).
type PointWriter interface {
	Write(ctx context.Context, points []tsdb.Point) error
}

// StateUpdater merges a device's reported state (the shadow store).
type StateUpdater interface {
	UpdateReported(ctx context.Context, thing string, patch map[string]any, deviceTime time.Time) error
}

// Options configure a Pipeline.
type Options struct {
	Logger      *slog.Logger
	Measurement string // default "telemetry"
	Points      PointWriter
	State       StateUpdater // nil: state messages are ignored
	Now         func() time.Time
}

// Stats are the pipeline's counters since start.
type Stats struct {
	Telemetry    uint64 `json:"telemetry_messages"`
	State        uint64 `json:"state_messages"`
	Points       uint64 `json:"points_written"`
	Values       uint64 `json:"values_written"`
	Malformed    uint64 `json:"malformed"`
	StoreErrors  uint64 `json:"store_errors"`
	StateErrors  uint64 `json:"state_errors"`
	EmptyPayload uint64 `json:"empty_messages"`
}

// Pipeline is the broker hook that stores telemetry and state.
type Pipeline struct {
	log   *slog.Logger
	meas  string
	pts   PointWriter
	state StateUpdater
	now   func() time.Time

	telemetry, stateMsgs, points, values, malformed, storeErr, stateErr, empty atomic.Uint64

	// malformed-payload log rate limit
	lastLog    atomic.Int64
	suppressed atomic.Uint64
}

// NewPipeline returns a pipeline writing to opts.Points.
func NewPipeline(opts Options) (*Pipeline, error) {
	if opts.Points == nil {
		return nil, errors.New("ingest: Options.Points is required")
	}
	p := &Pipeline{log: opts.Logger, meas: opts.Measurement, pts: opts.Points, state: opts.State, now: opts.Now}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.meas == "" {
		p.meas = "telemetry"
	}
	if p.now == nil {
		p.now = time.Now
	}
	return p, nil
}

// Route splits a device topic into the device id and the channel
// ("telemetry", "state", ...). ok is false for topics outside devices/.
func Route(topic string) (device, channel string, ok bool) {
	rest, found := strings.CutPrefix(topic, "devices/")
	if !found {
		return "", "", false
	}
	device, channel, found = strings.Cut(rest, "/")
	if !found || device == "" || channel == "" || strings.IndexByte(channel, '/') >= 0 {
		return "", "", false
	}
	return device, channel, true
}

// OnPublish implements broker.PublishHook. It returns an error only when the
// store could not accept the batch's points (the broker then refuses to
// acknowledge them, so QoS 1 publishers resend).
func (p *Pipeline) OnPublish(ctx context.Context, batch []*broker.Message) error {
	var points []tsdb.Point
	for _, m := range batch {
		device, channel, ok := Route(m.Topic)
		if !ok || (channel != "telemetry" && channel != "state") {
			continue
		}
		if len(m.Payload) == 0 {
			p.empty.Add(1)
			continue
		}
		pl, err := Parse(m.Payload)
		if err != nil {
			p.malformed.Add(1)
			p.logMalformed(m, err)
			continue
		}
		at := pl.Time
		if at.IsZero() {
			at = m.Received
			if at.IsZero() {
				at = p.now()
			}
		}
		switch channel {
		case "telemetry":
			p.telemetry.Add(1)
			if pt, ok := p.point(device, at, pl.Fields); ok {
				points = append(points, pt)
			}
		case "state":
			p.stateMsgs.Add(1)
			if p.state == nil {
				continue
			}
			if err := p.state.UpdateReported(ctx, device, pl.Data, pl.Time); err != nil {
				p.stateErr.Add(1)
				p.log.Warn("state update rejected", "device", device, "client", m.ClientID, "err", err)
			}
		}
	}
	if len(points) == 0 {
		return nil
	}
	if err := p.pts.Write(ctx, points); err != nil {
		p.storeErr.Add(1)
		return fmt.Errorf("ingest: store %d points: %w", len(points), err)
	}
	p.points.Add(uint64(len(points)))
	var n uint64
	for i := range points {
		n += uint64(len(points[i].Fields))
	}
	p.values.Add(n)
	return nil
}

func (p *Pipeline) point(device string, at time.Time, fields []FieldValue) (tsdb.Point, bool) {
	if len(fields) == 0 {
		return tsdb.Point{}, false
	}
	fs := make([]tsdb.Field, len(fields))
	for i, f := range fields {
		var v tsdb.Value
		switch f.Kind {
		case KindFloat:
			v = tsdb.FloatValue(f.Float)
		case KindBool:
			v = tsdb.BoolValue(f.Bool)
		default:
			v = tsdb.StringValue(f.Str)
		}
		fs[i] = tsdb.Field{Key: f.Key, Value: v}
	}
	return tsdb.Point{
		Measurement: p.meas,
		Tags:        []tsdb.Tag{{Key: "device_id", Value: device}},
		Fields:      fs,
		Time:        at.UnixNano(),
	}, true
}

// logMalformed logs at most one line per second, saying how many it skipped.
func (p *Pipeline) logMalformed(m *broker.Message, err error) {
	now := time.Now().UnixNano()
	last := p.lastLog.Load()
	if now-last < int64(time.Second) || !p.lastLog.CompareAndSwap(last, now) {
		p.suppressed.Add(1)
		return
	}
	p.log.Warn("malformed device payload dropped", "topic", m.Topic, "client", m.ClientID,
		"err", err, "suppressed_since_last", p.suppressed.Swap(0))
}

// Stats returns the counters.
func (p *Pipeline) Stats() Stats {
	return Stats{
		Telemetry: p.telemetry.Load(), State: p.stateMsgs.Load(), Points: p.points.Load(),
		Values: p.values.Load(), Malformed: p.malformed.Load(), StoreErrors: p.storeErr.Load(),
		StateErrors: p.stateErr.Load(), EmptyPayload: p.empty.Load(),
	}
}
