//go:build !linux

package lockdown

// listeningSockets returns ErrUnsupported: /proc/net is Linux only.
func listeningSockets() ([]Socket, error) { return nil, ErrUnsupported }
