//go:build !linux

package lockdown

import "syscall"

// noMPTCP has nothing to check off Linux, the only kernel with MPTCP
// sockets Go creates.
func noMPTCP(c syscall.RawConn) error { return nil }
