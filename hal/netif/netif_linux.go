package netif

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"
)

// A request is one netlink message (RFC 3549 §2.3.2; rtnetlink(7)),
// host byte order, every part padded to 4 bytes:
//
//	 0        4      6       8       12      16
//	+--------+------+-------+-------+-------+------------------+-------------
//	| len    | type | flags | seq   | pid   | family header    | attributes
//	+--------+------+-------+-------+-------+------------------+-------------
//	                                         ifinfomsg 16 bytes  rtattr: len(2) type(2) value, padded
//	                                         ifaddrmsg  8 bytes
//	                                         rtmsg     12 bytes
//
// The kernel answers a request with NLM_F_ACK by an NLMSG_ERROR message whose
// first four bytes are 0 or a negative errno.

// nlRequest builds a message of type typ with the family header hdr and
// attributes attrs (type -> value).
func nlRequest(typ uint16, flags uint16, hdr []byte, attrs ...attr) []byte {
	b := make([]byte, unix.SizeofNlMsghdr, 64)
	b = append(b, hdr...)
	for _, a := range attrs {
		l := unix.SizeofRtAttr + len(a.value)
		var h [unix.SizeofRtAttr]byte
		binary.NativeEndian.PutUint16(h[0:], uint16(l))
		binary.NativeEndian.PutUint16(h[2:], a.typ)
		b = append(b, h[:]...)
		b = append(b, a.value...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
	}
	binary.NativeEndian.PutUint32(b[0:], uint32(len(b)))
	binary.NativeEndian.PutUint16(b[4:], typ)
	binary.NativeEndian.PutUint16(b[6:], flags|unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	binary.NativeEndian.PutUint32(b[8:], 1) // seq
	return b
}

type attr struct {
	typ   uint16
	value []byte
}

// do sends one request and returns the kernel's verdict.
func do(req []byte) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink bind: %w", err)
	}
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink send: %w", err)
	}
	buf := make([]byte, os.Getpagesize())
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return fmt.Errorf("netlink receive: %w", err)
		}
		for b := buf[:n]; len(b) >= unix.SizeofNlMsghdr; {
			l := int(binary.NativeEndian.Uint32(b[0:]))
			typ := binary.NativeEndian.Uint16(b[4:])
			if l < unix.SizeofNlMsghdr || l > len(b) {
				return errShortReply
			}
			if typ == unix.NLMSG_ERROR {
				if l < unix.SizeofNlMsghdr+4 {
					return errShortReply
				}
				if code := int32(binary.NativeEndian.Uint32(b[unix.SizeofNlMsghdr:])); code != 0 {
					return unix.Errno(-code)
				}
				return nil
			}
			b = b[min((l+3)&^3, len(b)):]
		}
	}
}

func index(name string) (int32, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return 0, fmt.Errorf("netif: %w", err)
	}
	return int32(ifi.Index), nil
}

func up(name string) error {
	idx, err := index(name)
	if err != nil {
		return err
	}
	// struct ifinfomsg: family(1) pad(1) type(2) index(4) flags(4) change(4).
	hdr := make([]byte, unix.SizeofIfInfomsg)
	hdr[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint32(hdr[4:], uint32(idx))
	binary.NativeEndian.PutUint32(hdr[8:], unix.IFF_UP)
	binary.NativeEndian.PutUint32(hdr[12:], unix.IFF_UP)
	if err := do(nlRequest(unix.RTM_NEWLINK, 0, hdr)); err != nil {
		return fmt.Errorf("netif: set %s up: %w", name, err)
	}
	return nil
}

func addAddress(name string, p netip.Prefix) error {
	idx, err := index(name)
	if err != nil {
		return err
	}
	// struct ifaddrmsg: family(1) prefixlen(1) flags(1) scope(1) index(4).
	hdr := make([]byte, unix.SizeofIfAddrmsg)
	hdr[0] = unix.AF_INET
	hdr[1] = byte(p.Bits())
	hdr[3] = unix.RT_SCOPE_UNIVERSE
	binary.NativeEndian.PutUint32(hdr[4:], uint32(idx))
	a := p.Addr().As4()
	req := nlRequest(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_REPLACE, hdr,
		attr{unix.IFA_LOCAL, a[:]}, attr{unix.IFA_ADDRESS, a[:]})
	if err := do(req); err != nil {
		return fmt.Errorf("netif: add %v to %s: %w", p, name, err)
	}
	return nil
}

func addDefaultRoute(name string, gw netip.Addr) error {
	idx, err := index(name)
	if err != nil {
		return err
	}
	// struct rtmsg: family dst_len src_len tos table protocol scope type
	// (one byte each), flags(4).
	hdr := make([]byte, unix.SizeofRtMsg)
	hdr[0] = unix.AF_INET
	hdr[4] = unix.RT_TABLE_MAIN
	hdr[5] = unix.RTPROT_BOOT
	hdr[6] = unix.RT_SCOPE_UNIVERSE
	hdr[7] = unix.RTN_UNICAST
	g := gw.As4()
	var oif [4]byte
	binary.NativeEndian.PutUint32(oif[:], uint32(idx))
	req := nlRequest(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_REPLACE, hdr,
		attr{unix.RTA_GATEWAY, g[:]}, attr{unix.RTA_OIF, oif[:]})
	if err := do(req); err != nil {
		return fmt.Errorf("netif: default route via %v on %s: %w", gw, name, err)
	}
	return nil
}
