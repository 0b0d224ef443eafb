package media

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"syscall"
)

// maxBindAttempts bounds the search for a free even/odd port pair.
const maxBindAttempts = 64

// listenPair binds an even RTP port and RTP+1 for RTCP (RFC 3550 §11) on
// ip, within [min, max] or anywhere when both are 0.
func listenPair(ip netip.Addr, min, max uint16) (*net.UDPConn, *net.UDPConn, error) {
	network := "udp4"
	if ip.Is6() {
		network = "udp6"
	}
	bind := func(port uint16) (*net.UDPConn, error) {
		return net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, port)))
	}
	pair := func(port uint16) (*net.UDPConn, *net.UDPConn, error) {
		a, err := bind(port)
		if err != nil {
			return nil, nil, err
		}
		p := a.LocalAddr().(*net.UDPAddr).AddrPort().Port()
		if p%2 != 0 || p == 65535 {
			// A closing error on a socket we never used changes nothing.
			_ = a.Close()
			return nil, nil, syscall.EADDRINUSE
		}
		b, err := bind(p + 1)
		if err != nil {
			_ = a.Close() // as above
			return nil, nil, err
		}
		return a, b, nil
	}
	if min == 0 && max == 0 {
		var last error
		for i := 0; i < maxBindAttempts; i++ {
			a, b, err := pair(0)
			if err == nil {
				return a, b, nil
			}
			last = err
		}
		return nil, nil, fmt.Errorf("bind rtp/rtcp pair on %s: %w", ip, last)
	}
	if min == 0 || max < min {
		return nil, nil, fmt.Errorf("rtp port range %d-%d", min, max)
	}
	first := min + min%2
	if first == 0 || int(first)+1 > int(max) {
		return nil, nil, fmt.Errorf("rtp port range %d-%d holds no even/odd pair", min, max)
	}
	pairs := (int(max)-int(first)-1)/2 + 1
	start := rand.IntN(pairs)
	var last error
	for i := 0; i < pairs && i < 4*maxBindAttempts; i++ {
		port := first + uint16(2*((start+i)%pairs))
		a, b, err := pair(port)
		if err == nil {
			return a, b, nil
		}
		last = err
	}
	return nil, nil, fmt.Errorf("bind rtp/rtcp pair on %s in %d-%d: %w", ip, min, max, last)
}
