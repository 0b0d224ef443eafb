package lockdown

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// noMPTCP refuses a socket whose protocol is IPPROTO_MPTCP: the
// SetMultipathTCP(false) of ListenConfig and Dialer should make that
// impossible, and this proves it per socket.
func noMPTCP(c syscall.RawConn) error {
	var proto int
	var serr error
	if err := c.Control(func(fd uintptr) {
		proto, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PROTOCOL)
	}); err != nil {
		return fmt.Errorf("inspect socket: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("inspect socket protocol: %w", serr)
	}
	if proto == unix.IPPROTO_MPTCP {
		return errMPTCP
	}
	return nil
}
