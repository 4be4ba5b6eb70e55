//go:build !linux

package broker

import "net"

// waitReadable is not available on this platform: idle connections keep
// their small read buffer.
func waitReadable(net.Conn) (ok bool, err error) { return false, nil }
