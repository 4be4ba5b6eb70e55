//go:build linux

package broker

import (
	"net"
	"syscall"
	"unsafe"
)

// waitReadable blocks until nc has something to read (data, EOF or an
// error) without holding a read buffer, so an idle connection costs no
// buffer at all. It honours the read deadline. ok is false when nc does
// not expose its socket (TLS, WebSocket): the caller reads as usual.
func waitReadable(nc net.Conn) (ok bool, err error) {
	sc, isSys := nc.(syscall.Conn)
	if !isSys {
		return false, nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false, nil
	}
	var b byte
	err = rc.Read(func(fd uintptr) bool {
		// Peek one byte without blocking: EAGAIN means "wait for the
		// poller"; anything else (data, EOF, an error) is for Read.
		_, _, e := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b)), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		return e != syscall.EAGAIN
	})
	return true, err
}
