package media

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Bounds on a session description we accept. A phone's audio SDP is well
// under 2 KiB (baresip's DTLS offer is about 700 bytes); these leave room for
// SBCs that add many attributes while keeping a hostile body cheap to reject.
const (
	maxSDPBytes   = 16 << 10
	maxSDPLines   = 512
	maxSDPLineLen = 2048
	maxMedia      = 16
	maxFormats    = 64
	maxPortCount  = 16
)

// sdpLine is a line kept verbatim (i=, u=, e=, p=, b=, t=, r=, z=, k= and
// unknown types): we never act on them, but a round trip keeps them.
type sdpLine struct {
	Type  byte
	Value string
}

// sdpAttr is an a= line: "name" or "name:value" (RFC 4566 §5.13).
type sdpAttr struct {
	Name     string
	Value    string
	HasValue bool
}

// sdpConn is a c= line (RFC 4566 §5.7) as written; the address is checked
// when negotiating, not here, so that parsing stays independent of policy.
type sdpConn struct {
	NetType, AddrType, Addr string
}

// sdpOrigin is the o= line (RFC 4566 §5.2).
type sdpOrigin struct {
	User, SessID, SessVersion, NetType, AddrType, Addr string
}

// sdpMedia is one m= section (RFC 4566 §5.14).
type sdpMedia struct {
	Media string
	Port  int
	// PortCount is the "/n" suffix of the port, or 0 when absent.
	PortCount int
	Proto     string
	Formats   []string
	Conn      *sdpConn // nil: the session-level c= applies
	Other     []sdpLine
	Attrs     []sdpAttr
}

// sdpSession is a parsed session description.
type sdpSession struct {
	Origin sdpOrigin
	Name   string
	Conn   *sdpConn // nil when absent at session level
	Other  []sdpLine
	Attrs  []sdpAttr
	Media  []sdpMedia
}

// parseSDP parses a session description. It is liberal in what RFC 4566
// leaves to taste (LF or CRLF, line order within a section, trailing blanks)
// and strict in structure: v=0 first, one o= and one s=, at most one c= per
// section, well-formed m= lines, printable values, bounded sizes. It never
// panics and never allocates more than a small multiple of len(b).
func parseSDP(b []byte) (*sdpSession, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("empty body: %w", errSDPSyntax)
	}
	if len(b) > maxSDPBytes {
		return nil, fmt.Errorf("body of %d bytes exceeds %d: %w", len(b), maxSDPBytes, errSDPSyntax)
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) > maxSDPLines+1 {
		return nil, fmt.Errorf("%d lines exceed %d: %w", len(lines), maxSDPLines, errSDPSyntax)
	}
	sd := &sdpSession{}
	var (
		cur               *sdpMedia
		sawV, sawO, sawS  bool
		first             = true
		lineNo            int
		sessionConnMarked bool
	)
	for _, raw := range lines {
		lineNo++
		line := strings.TrimRight(strings.TrimSuffix(raw, "\r"), " \t")
		if line == "" {
			continue
		}
		if len(line) > maxSDPLineLen {
			return nil, fmt.Errorf("line %d: %d bytes exceed %d: %w", lineNo, len(line), maxSDPLineLen, errSDPSyntax)
		}
		if len(line) < 2 || line[1] != '=' || line[0] < 'a' || line[0] > 'z' {
			return nil, fmt.Errorf("line %d: not <type>=<value>: %w", lineNo, errSDPSyntax)
		}
		typ, val := line[0], line[2:]
		if err := checkSDPValue(val); err != nil {
			return nil, fmt.Errorf("line %d: %w", lineNo, err)
		}
		if first {
			if typ != 'v' || val != "0" {
				return nil, fmt.Errorf("line %d: first line must be v=0: %w", lineNo, errSDPSyntax)
			}
			first, sawV = false, true
			continue
		}
		switch typ {
		case 'v':
			return nil, fmt.Errorf("line %d: second v= line: %w", lineNo, errSDPSyntax)
		case 'm':
			if len(sd.Media) == maxMedia {
				return nil, fmt.Errorf("more than %d m= sections: %w", maxMedia, errSDPSyntax)
			}
			m, err := parseMediaLine(val)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", lineNo, err)
			}
			sd.Media = append(sd.Media, m)
			cur = &sd.Media[len(sd.Media)-1]
		case 'o':
			if cur != nil || sawO {
				return nil, fmt.Errorf("line %d: misplaced or repeated o=: %w", lineNo, errSDPSyntax)
			}
			f := strings.Fields(val)
			if len(f) != 6 {
				return nil, fmt.Errorf("line %d: o= has %d fields, want 6: %w", lineNo, len(f), errSDPSyntax)
			}
			sd.Origin = sdpOrigin{f[0], f[1], f[2], f[3], f[4], f[5]}
			sawO = true
		case 's':
			if cur != nil || sawS {
				return nil, fmt.Errorf("line %d: misplaced or repeated s=: %w", lineNo, errSDPSyntax)
			}
			sd.Name, sawS = val, true
		case 'c':
			c, err := parseConnLine(val)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", lineNo, err)
			}
			if cur == nil {
				if sessionConnMarked {
					return nil, fmt.Errorf("line %d: second session-level c=: %w", lineNo, errSDPSyntax)
				}
				sd.Conn, sessionConnMarked = &c, true
			} else {
				if cur.Conn != nil {
					return nil, fmt.Errorf("line %d: second c= in m= section: %w", lineNo, errSDPSyntax)
				}
				cur.Conn = &c
			}
		case 'a':
			a, err := parseAttr(val)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", lineNo, err)
			}
			if cur == nil {
				sd.Attrs = append(sd.Attrs, a)
			} else {
				cur.Attrs = append(cur.Attrs, a)
			}
		default:
			l := sdpLine{Type: typ, Value: val}
			if cur == nil {
				sd.Other = append(sd.Other, l)
			} else {
				cur.Other = append(cur.Other, l)
			}
		}
	}
	if !sawV || !sawO || !sawS {
		return nil, fmt.Errorf("missing v=, o= or s= line: %w", errSDPSyntax)
	}
	return sd, nil
}

// checkSDPValue refuses control characters: RFC 4566 §5 allows only
// printable text (and UTF-8 in a few fields) in values.
func checkSDPValue(v string) error {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return fmt.Errorf("control character %#02x in value: %w", c, errSDPSyntax)
		}
	}
	return nil
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		// RFC 4566 §9 token-char: printable ASCII minus space and a few separators.
		if c <= 0x20 || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

// parseMediaLine parses "<media> <port>[/<n>] <proto> <fmt> ...".
func parseMediaLine(val string) (sdpMedia, error) {
	f := strings.Fields(val)
	if len(f) < 4 {
		return sdpMedia{}, fmt.Errorf("m= has %d fields, want at least 4: %w", len(f), errSDPSyntax)
	}
	if len(f)-3 > maxFormats {
		return sdpMedia{}, fmt.Errorf("m= lists %d formats, limit %d: %w", len(f)-3, maxFormats, errSDPSyntax)
	}
	m := sdpMedia{Media: f[0], Proto: f[2]}
	if !isToken(m.Media) || !isProtoToken(m.Proto) {
		return sdpMedia{}, fmt.Errorf("m= media %q proto %q: %w", m.Media, m.Proto, errSDPSyntax)
	}
	port, count, hasCount := strings.Cut(f[1], "/")
	p, err := parseDecimal(port, 65535)
	if err != nil {
		return sdpMedia{}, fmt.Errorf("m= port %q: %w", f[1], errSDPSyntax)
	}
	m.Port = p
	if hasCount {
		n, err := parseDecimal(count, maxPortCount)
		if err != nil || n < 1 {
			return sdpMedia{}, fmt.Errorf("m= port count %q: %w", f[1], errSDPSyntax)
		}
		m.PortCount = n
	}
	for _, ft := range f[3:] {
		if !isToken(ft) {
			return sdpMedia{}, fmt.Errorf("m= format %q: %w", ft, errSDPSyntax)
		}
	}
	m.Formats = append([]string(nil), f[3:]...)
	return m, nil
}

func isProtoToken(s string) bool {
	// Protos are tokens joined by "/" (RTP/AVP, UDP/TLS/RTP/SAVPF).
	for _, part := range strings.Split(s, "/") {
		if !isToken(part) {
			return false
		}
	}
	return true
}

// parseDecimal parses 1-9 ASCII digits (no sign, no spaces) up to max.
func parseDecimal(s string, max int) (int, error) {
	if s == "" || len(s) > 9 {
		return 0, errSDPSyntax
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errSDPSyntax
		}
		n = n*10 + int(s[i]-'0')
	}
	if n > max {
		return 0, errSDPSyntax
	}
	return n, nil
}

func parseConnLine(val string) (sdpConn, error) {
	f := strings.Fields(val)
	if len(f) != 3 {
		return sdpConn{}, fmt.Errorf("c= has %d fields, want 3: %w", len(f), errSDPSyntax)
	}
	return sdpConn{f[0], f[1], f[2]}, nil
}

func parseAttr(val string) (sdpAttr, error) {
	name, value, has := strings.Cut(val, ":")
	if !isToken(name) {
		return sdpAttr{}, fmt.Errorf("attribute name %q: %w", name, errSDPSyntax)
	}
	return sdpAttr{Name: name, Value: value, HasValue: has}, nil
}

// marshal writes the description with CRLF line ends in RFC 4566 order
// (v o s, then the kept lines, c, a, and the m= sections).
func (sd *sdpSession) marshal() []byte {
	var b strings.Builder
	line := func(typ byte, v string) {
		b.WriteByte(typ)
		b.WriteByte('=')
		b.WriteString(v)
		b.WriteString("\r\n")
	}
	o := sd.Origin
	line('v', "0")
	line('o', strings.Join([]string{o.User, o.SessID, o.SessVersion, o.NetType, o.AddrType, o.Addr}, " "))
	line('s', sd.Name)
	if sd.Conn != nil {
		line('c', sd.Conn.String())
	}
	for _, l := range sd.Other {
		line(l.Type, l.Value)
	}
	for _, a := range sd.Attrs {
		line('a', a.String())
	}
	for _, m := range sd.Media {
		port := strconv.Itoa(m.Port)
		if m.PortCount > 0 {
			port += "/" + strconv.Itoa(m.PortCount)
		}
		line('m', strings.Join(append([]string{m.Media, port, m.Proto}, m.Formats...), " "))
		if m.Conn != nil {
			line('c', m.Conn.String())
		}
		for _, l := range m.Other {
			line(l.Type, l.Value)
		}
		for _, a := range m.Attrs {
			line('a', a.String())
		}
	}
	return []byte(b.String())
}

func (c sdpConn) String() string { return c.NetType + " " + c.AddrType + " " + c.Addr }

func (a sdpAttr) String() string {
	if a.HasValue {
		return a.Name + ":" + a.Value
	}
	return a.Name
}

// attr returns the value of the first attribute called name.
func findAttr(attrs []sdpAttr, name string) (string, bool) {
	for _, a := range attrs {
		if a.Name == name {
			return a.Value, true
		}
	}
	return "", false
}

// attrValues returns the values of every attribute called name.
func attrValues(attrs []sdpAttr, name string) []string {
	var out []string
	for _, a := range attrs {
		if a.Name == name {
			out = append(out, a.Value)
		}
	}
	return out
}

// connAddr resolves the c= line that applies to m (media level first,
// RFC 4566 §5.7) to an IP address. Hostnames are refused: a pinhole needs an
// address, and resolving a name from an SDP would let the peer steer lookups.
func (sd *sdpSession) connAddr(m *sdpMedia) (netip.Addr, error) {
	c := m.Conn
	if c == nil {
		c = sd.Conn
	}
	if c == nil {
		return netip.Addr{}, fmt.Errorf("no c= line for m=%s: %w", m.Media, ErrNotAcceptable)
	}
	if c.NetType != "IN" {
		return netip.Addr{}, fmt.Errorf("c= network type %q: %w", c.NetType, ErrNotAcceptable)
	}
	addr, err := netip.ParseAddr(c.Addr)
	if err != nil || addr.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("c= address %q is not an IP address: %w", c.Addr, ErrNotAcceptable)
	}
	switch {
	case c.AddrType == "IP4" && addr.Is4(), c.AddrType == "IP6" && addr.Is6() && !addr.Is4In6():
	default:
		return netip.Addr{}, fmt.Errorf("c= address type %q with %s: %w", c.AddrType, addr, ErrNotAcceptable)
	}
	if addr.IsMulticast() {
		return netip.Addr{}, fmt.Errorf("c= multicast address %s: %w: %w", addr, ErrDestination, ErrNotAcceptable)
	}
	return addr, nil
}

// direction is an SDP media direction (RFC 3264 §5.1, RFC 4566 §6).
type direction uint8

const (
	dirInactive direction = 0
	dirSend     direction = 1
	dirRecv     direction = 2
	dirSendRecv           = dirSend | dirRecv
)

func (d direction) String() string {
	switch d {
	case dirSendRecv:
		return "sendrecv"
	case dirSend:
		return "sendonly"
	case dirRecv:
		return "recvonly"
	}
	return "inactive"
}

// reverse is the direction as seen from the other end.
func (d direction) reverse() direction {
	return (d&dirSend)<<1 | (d&dirRecv)>>1
}

// mediaDirection reads the direction attribute of m, falling back to the
// session level and then to sendrecv (RFC 3264 §5.1).
func (sd *sdpSession) mediaDirection(m *sdpMedia) direction {
	for _, attrs := range [][]sdpAttr{m.Attrs, sd.Attrs} {
		for _, a := range attrs {
			switch a.Name {
			case "sendrecv":
				return dirSendRecv
			case "sendonly":
				return dirSend
			case "recvonly":
				return dirRecv
			case "inactive":
				return dirInactive
			}
		}
	}
	return dirSendRecv
}
