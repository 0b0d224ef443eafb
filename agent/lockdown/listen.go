package lockdown

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
)

// ListenConfig returns the net.ListenConfig every agent listener must be
// made with. Its Control refuses a socket the policy has no listener (or RTP
// port) for, so the agent binds only what the policy allows, checked in one
// place; and multipath TCP is off, because Go 1.24+ makes TCP listeners
// MPTCP by default and Landlock's network rules do not cover MPTCP sockets.
func (p *Policy) ListenConfig() net.ListenConfig {
	lc := net.ListenConfig{
		Control: func(network, address string, c syscall.RawConn) error {
			if err := p.checkListen(network, address); err != nil {
				return err
			}
			return noMPTCP(c)
		},
	}
	lc.SetMultipathTCP(false)
	return lc
}

// Dialer returns a net.Dialer for the agent's outgoing connections, with
// multipath TCP off for the same reason as ListenConfig.
func Dialer() *net.Dialer {
	d := &net.Dialer{Control: func(network, address string, c syscall.RawConn) error { return noMPTCP(c) }}
	d.SetMultipathTCP(false)
	return d
}

func (p *Policy) checkListen(network, address string) error {
	var proto Proto
	switch {
	case strings.HasPrefix(network, "tcp"):
		proto = TCP
	case strings.HasPrefix(network, "udp"):
		proto = UDP
	default:
		return fmt.Errorf("%w: network %q", ErrListenRefused, network)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s %q: %v", ErrListenRefused, network, address, err)
	}
	if _, ok := p.allowsListen(proto, ap.Port()); !ok || ap.Port() == 0 {
		return fmt.Errorf("%w: %s %s", ErrListenRefused, proto, ap)
	}
	return nil
}
