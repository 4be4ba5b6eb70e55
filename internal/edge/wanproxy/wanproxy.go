// Package wanproxy is a TCP proxy that stands in for a WAN link in tests
// and benchmarks: it adds a fixed one-way delay in each direction
// (preserving byte order) and can cut every connection and refuse new ones
// until restored.
package wanproxy

import (
	"net"
	"sync"
	"time"
)

// Proxy forwards connections from its listener to Target.
type Proxy struct {
	Target string
	Delay  time.Duration // one way

	ln    net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	down  bool
	wg    sync.WaitGroup
}

// Start listens on addr ("127.0.0.1:0" for a random port) and proxies to
// target with delay added in each direction.
func Start(addr, target string, delay time.Duration) (*Proxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	p := &Proxy{Target: target, Delay: delay, ln: ln, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's listen address.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut closes every proxied connection and refuses new ones until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
}

// Restore accepts connections again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.Cut()
	p.wg.Wait()
	return err
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(in) {
			in.Close()
			continue
		}
		out, err := net.Dial("tcp", p.Target)
		if err != nil || !p.track(out) {
			if out != nil {
				out.Close()
			}
			p.untrack(in)
			continue
		}
		p.wg.Add(2)
		go func() { defer p.wg.Done(); p.pipe(in, out) }()
		go func() { defer p.wg.Done(); p.pipe(out, in) }()
	}
}

type chunk struct {
	due time.Time
	b   []byte
}

// pipe copies src to dst, releasing each chunk Delay after it was read.
func (p *Proxy) pipe(src, dst net.Conn) {
	defer p.untrack(src)
	defer p.untrack(dst)
	q := make(chan chunk, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := range q {
			if d := time.Until(c.due); d > 0 {
				time.Sleep(d)
			}
			if _, err := dst.Write(c.b); err != nil {
				for range q {
				}
				return
			}
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			q <- chunk{due: time.Now().Add(p.Delay), b: append([]byte(nil), buf[:n]...)}
		}
		if err != nil {
			break // EOF, or closed by Cut or the peer
		}
	}
	close(q)
	<-done
}
