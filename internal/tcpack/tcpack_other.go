//go:build !linux

package tcpack

import (
	"crypto/tls"
	"errors"
)

// ErrUnsupported: the platform has no TCP send-queue count (SIOCOUTQ).
var ErrUnsupported = errors.New("the TCP send-queue count (SIOCOUTQ) needs Linux")

// Supported is ErrUnsupported here: a record could be counted delivered
// while still in a send buffer.
func Supported() error { return ErrUnsupported }

// Unacked always fails here.
func Unacked(*tls.Conn) (int, error) { return 0, ErrUnsupported }
