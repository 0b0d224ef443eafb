package lockdown

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// Socket is one listening socket: a TCP socket in LISTEN, or an unconnected
// UDP socket (one that receives from anyone who knows its port).
type Socket struct {
	Proto Proto          `json:"proto"`
	Addr  netip.AddrPort `json:"addr"`
	Inode uint64         `json:"inode"`
	// Owners are the processes holding the socket; empty when none is
	// visible (a socket of the kernel's, or of another PID namespace).
	Owners []Owner `json:"owners,omitempty"`
}

// Owner is a process holding a socket.
type Owner struct {
	PID  int    `json:"pid"`
	Comm string `json:"comm"`
	// Exe is the executable's base name; empty for kernel threads.
	Exe string `json:"exe,omitempty"`
}

func (o Owner) String() string { return fmt.Sprintf("%s[%d]", o.Comm, o.PID) }

// matches reports whether the owner is the named process, by comm (cut to
// 15 bytes by the kernel) or executable name.
func (o Owner) matches(name string) bool {
	return o.Comm == name || (len(name) > 15 && o.Comm == name[:15]) || o.Exe == name
}

// TCP states in /proc/net/tcp (include/net/tcp_states.h).
const (
	tcpListen = 0x0A
	tcpClose  = 0x07 // an unconnected UDP socket shows as TCP_CLOSE
)

// parseProcNet reads one of /proc/net/{tcp,tcp6,udp,udp6} and returns its
// listening sockets. The format (net/ipv4/tcp_ipv4.c, get_tcp4_sock) is a
// header line, then per socket:
//
//	sl  local_address rem_address   st tx_queue:rx_queue tr:tm->when retrnsmt   uid  timeout inode
//	0: 0100007F:13C4 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 ...
//
// Addresses are the raw network-order words printed as host-order hex, so
// on a little-endian machine 127.0.0.1 reads 0100007F; ports are plain hex.
func parseProcNet(r io.Reader, proto Proto) ([]Socket, error) {
	var out []Socket
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<16)
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 10 {
			continue
		}
		st, err := strconv.ParseUint(f[3], 16, 8)
		if err != nil {
			return nil, fmt.Errorf("socket state %q: %w", f[3], err)
		}
		local, err := parseHexAddrPort(f[1])
		if err != nil {
			return nil, err
		}
		remote, err := parseHexAddrPort(f[2])
		if err != nil {
			return nil, err
		}
		switch proto {
		case TCP:
			if st != tcpListen {
				continue
			}
		case UDP:
			if st != tcpClose || remote.Port() != 0 {
				continue
			}
		}
		inode, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("socket inode %q: %w", f[9], err)
		}
		out = append(out, Socket{Proto: proto, Addr: local, Inode: inode})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read socket table: %w", err)
	}
	return out, nil
}

func parseHexAddrPort(s string) (netip.AddrPort, error) {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("socket address %q: no port", s)
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("socket port %q: %w", p, err)
	}
	raw, err := hex.DecodeString(h)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("socket address %q: want 8 or 32 hex digits", h)
	}
	// Each 32-bit word was printed as a host-order number: turn it back
	// into the bytes it was in memory.
	b := make([]byte, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(b[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	a, _ := netip.AddrFromSlice(b) // 4 or 16 bytes, checked above
	return netip.AddrPortFrom(a.Unmap(), uint16(port)), nil
}
