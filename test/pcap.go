package test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Link-layer header types of the classic pcap format that tcpdump writes on
// Linux (tcpdump.org/linktypes.html).
const (
	linkNull      = 0   // BSD loopback: 4-byte address family, host order
	linkEthernet  = 1   // Linux lo: Ethernet with zero MACs
	linkRaw       = 101 // bare IPv4 or IPv6
	linkRawAlt    = 12  // LINKTYPE_RAW as some libpcaps write it
	linkLinuxSLL  = 113 // "-i any" before libpcap 1.10
	linkLinuxSLL2 = 276 // "-i any" since libpcap 1.10
)

// parsePcap reads a classic pcap file and returns its TCP and UDP packets
// over IPv4 or IPv6; other packets are skipped.
//
// File header (24 bytes), then records:
//
//	magic u32 | major u16 | minor u16 | zone i32 | sigfigs u32 | snaplen u32 | linktype u32
//	record: sec u32 | usec-or-nsec u32 | caplen u32 | origlen u32 | caplen bytes
//
// The magic, 0xa1b2c3d4 (microseconds) or 0xa1b23c4d (nanoseconds), also
// tells the byte order of every field.
func parsePcap(b []byte) ([]CapturedPacket, error) {
	if len(b) < 24 {
		return nil, fmt.Errorf("pcap file of %d bytes, want >= 24", len(b))
	}
	var bo binary.ByteOrder
	var nanos bool
	switch m := binary.LittleEndian.Uint32(b); m {
	case 0xa1b2c3d4:
		bo = binary.LittleEndian
	case 0xa1b23c4d:
		bo, nanos = binary.LittleEndian, true
	case 0xd4c3b2a1:
		bo = binary.BigEndian
	case 0x4d3cb2a1:
		bo, nanos = binary.BigEndian, true
	case 0x0a0d0d0a:
		return nil, errors.New("pcapng file, want classic pcap (tcpdump -w)")
	default:
		return nil, fmt.Errorf("pcap magic %#08x", m)
	}
	link := bo.Uint32(b[20:24]) & 0x0fffffff // top bits carry FCS flags
	var pkts []CapturedPacket
	for off := 24; off+16 <= len(b); {
		sec, frac := bo.Uint32(b[off:]), bo.Uint32(b[off+4:])
		caplen := int(bo.Uint32(b[off+8:]))
		off += 16
		if caplen > len(b)-off {
			break // tcpdump killed mid-write: drop the partial record
		}
		frame := b[off : off+caplen]
		off += caplen
		ns := int64(frac)
		if !nanos {
			ns *= 1000
		}
		p, ok := parseFrame(link, frame, bo)
		if !ok {
			continue
		}
		p.Time = time.Unix(int64(sec), ns)
		pkts = append(pkts, p)
	}
	return pkts, nil
}

// parseFrame strips the link-layer header and parses IP and TCP or UDP.
func parseFrame(link uint32, f []byte, fileOrder binary.ByteOrder) (CapturedPacket, bool) {
	switch link {
	case linkNull:
		if len(f) < 4 {
			return CapturedPacket{}, false
		}
		// The family is in the capturing host's order, which for a file
		// written here is the file's order.
		switch fileOrder.Uint32(f) {
		case 2, 24, 28, 30: // AF_INET and the BSDs' AF_INET6 values
			return parseIP(f[4:])
		}
		return CapturedPacket{}, false
	case linkEthernet:
		if len(f) < 14 {
			return CapturedPacket{}, false
		}
		etype, rest := binary.BigEndian.Uint16(f[12:14]), f[14:]
		for (etype == 0x8100 || etype == 0x88a8) && len(rest) >= 4 { // VLAN tags
			etype, rest = binary.BigEndian.Uint16(rest[2:4]), rest[4:]
		}
		if etype != 0x0800 && etype != 0x86dd {
			return CapturedPacket{}, false
		}
		return parseIP(rest)
	case linkRaw, linkRawAlt:
		return parseIP(f)
	case linkLinuxSLL:
		if len(f) < 16 {
			return CapturedPacket{}, false
		}
		return parseEtherProto(binary.BigEndian.Uint16(f[14:16]), f[16:])
	case linkLinuxSLL2:
		if len(f) < 20 {
			return CapturedPacket{}, false
		}
		return parseEtherProto(binary.BigEndian.Uint16(f[0:2]), f[20:])
	}
	return CapturedPacket{}, false
}

func parseEtherProto(etype uint16, b []byte) (CapturedPacket, bool) {
	if etype != 0x0800 && etype != 0x86dd {
		return CapturedPacket{}, false
	}
	return parseIP(b)
}

// parseIP parses an IPv4 or IPv6 header and the TCP or UDP header after it.
func parseIP(b []byte) (CapturedPacket, bool) {
	if len(b) < 1 {
		return CapturedPacket{}, false
	}
	var p CapturedPacket
	var proto byte
	var l4 []byte
	switch b[0] >> 4 {
	case 4:
		if len(b) < 20 {
			return p, false
		}
		ihl := int(b[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(b[2:4]))
		if ihl < 20 || total < ihl || total > len(b) {
			return p, false
		}
		// Only the first fragment carries the transport header.
		if binary.BigEndian.Uint16(b[6:8])&0x1fff != 0 {
			return p, false
		}
		proto = b[9]
		p.Src = netip.AddrFrom4([4]byte(b[12:16]))
		p.Dst = netip.AddrFrom4([4]byte(b[16:20]))
		l4 = b[ihl:total]
	case 6:
		if len(b) < 40 {
			return p, false
		}
		plen := int(binary.BigEndian.Uint16(b[4:6]))
		if 40+plen > len(b) {
			return p, false
		}
		// Extension headers are not followed: nothing here sends them.
		proto = b[6]
		p.Src = netip.AddrFrom16([16]byte(b[8:24]))
		p.Dst = netip.AddrFrom16([16]byte(b[24:40]))
		l4 = b[40 : 40+plen]
	default:
		return p, false
	}
	switch proto {
	case 17:
		if len(l4) < 8 {
			return p, false
		}
		ulen := int(binary.BigEndian.Uint16(l4[4:6]))
		if ulen < 8 || ulen > len(l4) {
			ulen = len(l4)
		}
		p.Proto = "udp"
		p.SrcPort, p.DstPort = binary.BigEndian.Uint16(l4[0:2]), binary.BigEndian.Uint16(l4[2:4])
		p.Payload = l4[8:ulen]
	case 6:
		if len(l4) < 20 {
			return p, false
		}
		doff := int(l4[12]>>4) * 4
		if doff < 20 || doff > len(l4) {
			return p, false
		}
		p.Proto = "tcp"
		p.SrcPort, p.DstPort = binary.BigEndian.Uint16(l4[0:2]), binary.BigEndian.Uint16(l4[2:4])
		p.Payload = l4[doff:]
	default:
		return p, false
	}
	return p, true
}
