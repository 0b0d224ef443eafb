//go:build !linux

package control

import "net"

func peerUID(*net.UnixConn) (uint32, error) { return 0, ErrUnsupported }

func checkDir(string) error { return ErrUnsupported }
