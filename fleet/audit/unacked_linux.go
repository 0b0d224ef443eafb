package audit

import (
	"crypto/tls"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

func checkUnackedSupported() error { return nil }

// unacked returns the bytes written on conn that the peer's TCP has not
// acknowledged yet: SIOCOUTQ (tcp(7)) on the socket under the TLS layer.
func unacked(conn *tls.Conn) (int, error) {
	tc, ok := conn.NetConn().(*net.TCPConn)
	if !ok {
		return 0, fmt.Errorf("connection is %T, not TCP", conn.NetConn())
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var (
		n    int
		ierr error
	)
	if err := rc.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ) }); err != nil {
		return 0, err
	}
	if ierr != nil {
		return 0, fmt.Errorf("SIOCOUTQ: %w", ierr)
	}
	return n, nil
}
