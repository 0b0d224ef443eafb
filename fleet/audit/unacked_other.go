//go:build !linux

package audit

import (
	"crypto/tls"
	"errors"
)

// errUnsupported: delivery is confirmed with Linux's SIOCOUTQ; elsewhere
// a checkpoint could be counted delivered while still in a send buffer.
var errUnsupported = errors.New("syslog export of checkpoints needs Linux (SIOCOUTQ)")

func checkUnackedSupported() error { return errUnsupported }

func unacked(*tls.Conn) (int, error) { return 0, errUnsupported }
