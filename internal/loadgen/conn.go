package loadgen

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

// connsPerSourceIP bounds how many connections to one loopback address and
// port share a source address, staying clear of the ephemeral port range.
const connsPerSourceIP = 20000

// loopbackSpreadDial returns a dial function that, for a loopback target,
// binds connection i to source address 127.a.b.(1 + i/connsPerSourceIP),
// where a.b is chosen per run (base). Each source address has its own
// ephemeral port range, so one run, or several generator processes side by
// side, can open more connections than one address has ports. It returns
// nil (dial normally) for other targets.
func loopbackSpreadDial(addr string, base [2]byte, i int) func(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.To4() == nil || !ip.IsLoopback() {
		return nil
	}
	n := 1 + i/connsPerSourceIP
	if n > 254 {
		return nil
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, base[0], base[1], byte(n))}}
	return d.DialContext
}

// runConnBench opens o.Conns connections (each CONNECT + SUBSCRIBE to its
// own topic), reports the connect rate, and holds them idle for o.Hold.
func runConnBench(ctx context.Context, o BenchOptions) (*BenchResult, error) {
	res := &BenchResult{
		Scenario: o.Scenario, Addr: o.Addr, Version: o.Version, QoS: o.QoS, Conns: o.Conns,
	}
	var (
		errs errorLog
		mu   sync.Mutex
		hist Histogram
	)
	conns := make([]net.Conn, o.Conns)
	keepAlive := make([]uint16, o.Conns)
	defer func() {
		for _, nc := range conns {
			if nc != nil {
				_ = nc.Close()
			}
		}
	}()
	rss := newRSSProbe(o.PID, &errs)
	var base [2]byte
	_, _ = rand.Read(base[:])
	base[0] = 1 + base[0]%254 // never 127.0.x.x, the usual client addresses
	start := time.Now()
	// Failures are counted, not fatal: the point is how many the broker takes.
	_ = forEach(ctx, o.Conns, o.ConnectConcurrency, func(ctx context.Context, i int) error {
		t0 := time.Now()
		cfg := o.connectConfig(o.ClientIDPrefix + "c" + strconv.Itoa(i))
		if cfg.dial == nil {
			cfg.dial = loopbackSpreadDial(o.Addr, base, i)
		}
		cfg.bufSize = 512
		c, err := dialMQTT(ctx, cfg)
		d := time.Since(t0) // CONNECT to CONNACK, including the TCP handshake
		if err == nil {
			err = c.subscribe(ctx, 1, o.QoS, o.topicPrefix()+"conn/"+strconv.Itoa(i))
			if err != nil {
				_ = c.nc.Close()
			}
		}
		if err != nil {
			if ctx.Err() == nil {
				errs.add(err)
			}
			return nil
		}
		// Keep only the socket: no buffers, no goroutine per held connection.
		conns[i] = c.nc
		keepAlive[i] = c.serverKeepAlive
		mu.Lock()
		hist.RecordDuration(d)
		mu.Unlock()
		return nil
	})
	res.ConnectElapsed = time.Since(start)
	for _, nc := range conns {
		if nc != nil {
			res.Connected++
		}
	}
	if s := res.ConnectElapsed.Seconds(); s > 0 {
		res.ConnectRate = float64(res.Connected) / s
	}
	cl := hist.Summary()
	res.ConnectLatency = &cl
	res.Held = res.Connected
	if o.OnHeld != nil {
		o.OnHeld(res.Held)
	}
	if o.Hold > 0 && ctx.Err() == nil {
		holdConns(ctx, o, conns, keepAlive, &errs)
		held := 0
		for _, nc := range conns {
			if nc != nil {
				held++
			}
		}
		res.Held = held
	}
	rss.finish(res, res.Held, &errs)
	res.Errors = errs.n.Load()
	res.FirstError = errs.firstString()
	if res.Connected == 0 && o.Conns > 0 {
		return res, fmt.Errorf("bench: no connection succeeded: %s: %w", res.FirstError, ErrRefused)
	}
	return res, nil
}

// holdConns waits for o.Hold (or ctx), sending PINGREQ on connections whose
// server asked for a keep alive. Connections found closed are dropped from
// conns (set to nil).
func holdConns(ctx context.Context, o BenchOptions, conns []net.Conn, keepAlive []uint16, errs *errorLog) {
	timer := time.NewTimer(o.Hold)
	defer timer.Stop()
	minKA := uint16(0)
	for i, ka := range keepAlive {
		if conns[i] != nil && ka > 0 && (minKA == 0 || ka < minKA) {
			minKA = ka
		}
	}
	var tick <-chan time.Time
	if minKA > 0 {
		t := time.NewTicker(time.Duration(minKA) * time.Second / 2)
		defer t.Stop()
		tick = t.C
	}
	ping := packets.AppendPingreq(nil)
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			return
		case <-tick:
			for i, nc := range conns {
				if nc == nil || keepAlive[i] == 0 {
					continue
				}
				_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
				if _, err := nc.Write(ping); err != nil {
					errs.add(fmt.Errorf("hold: ping: %w", err))
					_ = nc.Close()
					conns[i] = nil
				}
			}
		}
	}
}
