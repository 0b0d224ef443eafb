package tcpack

import (
	"crypto/tls"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// Supported is nil where Unacked works.
func Supported() error { return nil }

// Unacked returns the bytes written on conn that the peer's TCP has not
// acknowledged yet: SIOCOUTQ on the socket under the TLS layer.
func Unacked(conn *tls.Conn) (int, error) {
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
