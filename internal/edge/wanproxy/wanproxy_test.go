package wanproxy

import (
	"io"
	"net"
	"testing"
	"time"
)

func echoServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

func TestDelayAndCut(t *testing.T) {
	p, err := Start("127.0.0.1:0", echoServer(t), 30*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c.Write([]byte("ping"))
	b := make([]byte, 4)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "ping" {
		t.Fatalf("echo: %q %v", b, err)
	}
	// The delay is a lower bound, so this cannot fail on a slow machine.
	if rtt := time.Since(start); rtt < 60*time.Millisecond {
		t.Fatalf("round trip %s through a 30ms one-way delay", rtt)
	}
	p.Cut()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(b); err == nil {
		t.Fatal("connection survived Cut")
	}
	if c2, err := net.Dial("tcp", p.Addr()); err == nil {
		c2.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c2.Read(b); err == nil {
			t.Fatal("new connection accepted while cut")
		}
	}
	p.Restore()
	c3, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	c3.Write([]byte("pong"))
	if _, err := io.ReadFull(c3, b); err != nil || string(b) != "pong" {
		t.Fatalf("after restore: %q %v", b, err)
	}
}
