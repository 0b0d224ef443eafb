//go:build !linux

package events

import (
	"crypto/tls"
	"fmt"
)

// Without SIOCOUTQ the exporter could only count a record delivered once
// written, which would lose what a broken connection held: it refuses to
// run instead.
func checkUnackedSupported() error {
	return fmt.Errorf("exporter needs the TCP send-queue count (SIOCOUTQ): %w", ErrUnsupported)
}

func unacked(*tls.Conn) (int, error) { return 0, ErrUnsupported }
