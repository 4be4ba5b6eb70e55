package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

// SharedGroupPrefix starts the filters of ScenarioShared.
const SharedGroupPrefix = "$share/bench/"

// ReadRSS returns the resident memory of process pid in bytes, from
// /proc/PID/status (Linux only).
func ReadRSS(pid int) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("bench: read RSS of pid %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("VmRSS:")); ok {
			v = bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(v), []byte("kB")))
			kb, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("bench: RSS of pid %d: %w", pid, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("bench: no VmRSS for pid %d", pid)
}

// rssProbe records the target's RSS before and after for res.
type rssProbe struct {
	pid    int
	before int64
}

func newRSSProbe(pid int, errs *errorLog) *rssProbe {
	if pid <= 0 {
		return nil
	}
	v, err := ReadRSS(pid)
	if err != nil {
		errs.add(err)
		return nil
	}
	return &rssProbe{pid: pid, before: v}
}

func (p *rssProbe) finish(res *BenchResult, conns int, errs *errorLog) {
	if p == nil {
		return
	}
	v, err := ReadRSS(p.pid)
	if err != nil {
		errs.add(err)
		return
	}
	res.TargetRSSBefore, res.TargetRSSAfter = p.before, v
	if conns > 0 {
		res.RSSPerConn = float64(v-p.before) / float64(conns)
	}
}

// runSlowBench connects o.Conns devices, then has each publish one QoS 1
// message every o.Interval for o.Duration, phases spread evenly, and
// measures PUBACK latency. Each device has one goroutine that sleeps
// between publishes and reads its PUBACK.
func runSlowBench(ctx context.Context, o BenchOptions) (*BenchResult, error) {
	res := &BenchResult{
		Scenario: o.Scenario, Addr: o.Addr, Version: o.Version, QoS: 1, Size: o.Size, Conns: o.Conns, Pubs: o.Conns,
		TargetRate: float64(o.Conns) / o.Interval.Seconds(),
	}
	var (
		errs     errorLog
		connMu   sync.Mutex
		connHist Histogram
	)
	rss := newRSSProbe(o.PID, &errs)
	conns := make([]*rawConn, o.Conns)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.disconnect()
			}
		}
	}()
	var base [2]byte
	_, _ = rand.Read(base[:])
	base[0] = 1 + base[0]%254
	start := time.Now()
	_ = forEach(ctx, o.Conns, o.ConnectConcurrency, func(ctx context.Context, i int) error {
		cfg := o.connectConfig(o.ClientIDPrefix + "d" + strconv.Itoa(i))
		if cfg.dial == nil {
			cfg.dial = loopbackSpreadDial(o.Addr, base, i)
		}
		cfg.bufSize = 512
		t0 := time.Now()
		c, err := dialMQTT(ctx, cfg)
		if err != nil {
			if ctx.Err() == nil {
				errs.add(err)
			}
			return nil
		}
		d := time.Since(t0)
		conns[i] = c
		connMu.Lock()
		connHist.RecordDuration(d)
		connMu.Unlock()
		return nil
	})
	res.ConnectElapsed = time.Since(start)
	for _, c := range conns {
		if c != nil {
			res.Connected++
		}
	}
	if s := res.ConnectElapsed.Seconds(); s > 0 {
		res.ConnectRate = float64(res.Connected) / s
	}
	cl := connHist.Summary()
	res.ConnectLatency = &cl
	rss.finish(res, res.Connected, &errs)
	if res.Connected == 0 {
		res.Errors, res.FirstError = errs.n.Load(), errs.firstString()
		return res, fmt.Errorf("bench: no connection succeeded: %s: %w", res.FirstError, ErrRefused)
	}
	if o.OnHeld != nil {
		o.OnHeld(res.Connected)
	}

	const shards = 64
	var (
		hists  [shards]Histogram
		hmu    [shards]sync.Mutex
		sent   atomic.Uint64
		acked  atomic.Uint64
		wg     sync.WaitGroup
		topics = o.topicPrefix() + "slow/"
	)
	// Interrupting the run unblocks every device's read.
	stopReads := context.AfterFunc(ctx, func() {
		for _, c := range conns {
			if c != nil {
				_ = c.nc.SetDeadline(time.Unix(1, 0))
			}
		}
	})
	defer stopReads()
	begin := time.Now()
	end := begin.Add(o.Duration)
	runCtx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	for i, c := range conns {
		if c == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			payload := make([]byte, o.Size)
			msg := packets.Publish{Topic: topics + strconv.Itoa(i), QoS: 1, Payload: payload}
			next := begin.Add(time.Duration(float64(o.Interval) * float64(i) / float64(o.Conns)))
			var buf []byte
			var a packets.Ack
			for id := uint16(1); ; id = id%65535 + 1 {
				if !next.Before(end) {
					return
				}
				t := time.NewTimer(time.Until(next))
				select {
				case <-t.C:
				case <-runCtx.Done():
					t.Stop()
					return
				}
				next = next.Add(o.Interval)
				now := time.Now()
				PutStamp(payload, now)
				msg.PacketID = id
				buf = packets.AppendPublish(buf[:0], o.Version, &msg)
				_ = c.nc.SetDeadline(now.Add(o.Interval + 10*time.Second))
				if _, err := c.bw.Write(buf); err == nil {
					err = c.bw.Flush()
				}
				sent.Add(1)
				for {
					h, body, err := c.readPacket()
					if err != nil {
						if runCtx.Err() == nil {
							errs.add(fmt.Errorf("device %d: %w", i, err))
						}
						return
					}
					if h.Type == packets.DISCONNECT {
						errs.add(fmt.Errorf("device %d: disconnected by broker: %w", i, ErrRefused))
						return
					}
					if h.Type != packets.PUBACK {
						continue
					}
					if err := packets.DecodeAck(c.version, h, body, &a); err != nil || a.PacketID != id {
						errs.add(fmt.Errorf("device %d: unexpected PUBACK %d (%v): %w", i, a.PacketID, err, packets.ErrProtocol))
						return
					}
					if a.ReasonCode >= 0x80 {
						errs.add(fmt.Errorf("device %d: PUBACK reason 0x%02X: %w", i, a.ReasonCode, ErrRefused))
					}
					lat := time.Since(now)
					acked.Add(1)
					hmu[i%shards].Lock()
					hists[i%shards].RecordDuration(lat)
					hmu[i%shards].Unlock()
					break
				}
			}
		}()
	}
	wg.Wait()
	res.Elapsed = min(time.Since(begin), o.Duration)
	ack := NewHistogram()
	for i := range hists {
		ack.Merge(&hists[i])
	}
	s := ack.Summary()
	res.AckLatency = &s
	res.Sent, res.Acked = sent.Load(), acked.Load()
	if secs := res.Elapsed.Seconds(); secs > 0 {
		res.SentRate = float64(res.Sent) / secs
	}
	res.Errors, res.FirstError = errs.n.Load(), errs.firstString()
	return res, nil
}
