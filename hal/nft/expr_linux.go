package nft

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Registers: NFT_REG_1 is 16 bytes wide and aliases the 32-bit registers
// NFT_REG32_00..03 (8..11). A concatenation is loaded field by field into
// consecutive 32-bit registers, each field padded to 4 bytes, and looked up
// from the first; this is the layout `nft --debug=netlink` shows for
// `ip saddr . udp sport . udp dport @set`.
const (
	reg1     = unix.NFT_REG_1
	reg32_00 = 8
)

// canonicalReg names a 32-bit register the way the kernel dumps it: one
// that starts a 16-byte register is reported as that register (reg32 12 as
// NFT_REG_2), so rules read back compare equal to the ones written.
func canonicalReg(r uint32) uint32 {
	if r >= reg32_00 && (r-reg32_00)%4 == 0 {
		return reg1 + (r-reg32_00)/4
	}
	return r
}

var (
	ipv4Key = mustConcat(nftables.TypeIPAddr, nftables.TypeInetService, nftables.TypeInetService)
	ipv6Key = mustConcat(nftables.TypeIP6Addr, nftables.TypeInetService, nftables.TypeInetService)
)

// mustConcat builds a fixed set key type of three fields: ConcatSetType only
// fails for more than five, so a failure here is a programming error caught
// by every test run; it yields the invalid type, which the kernel refuses.
func mustConcat(ts ...nftables.SetDatatype) nftables.SetDatatype {
	t, err := nftables.ConcatSetType(ts...)
	if err != nil {
		return nftables.TypeInvalid
	}
	return t
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// ifname is an interface name as the kernel compares it: IFNAMSIZ bytes,
// NUL padded.
func ifname(n string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, n)
	return b
}

func portMatch(offset uint32, r PortRange) []expr.Any {
	load := &expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: offset, Len: 2}
	if r.First == r.Last {
		return []expr.Any{load, &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: be16(r.First)}}
	}
	return []expr.Any{load,
		&expr.Cmp{Op: expr.CmpOpGte, Register: reg1, Data: be16(r.First)},
		&expr.Cmp{Op: expr.CmpOpLte, Register: reg1, Data: be16(r.Last)},
	}
}

func addrMatch(p netip.Prefix, dst bool) []expr.Any {
	var off, n uint32 = 12, 4 // ip saddr
	if p.Addr().Is6() {
		off, n = 8, 16
	}
	if dst {
		off += n
	}
	load := &expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n}
	want := p.Addr().AsSlice()
	if p.Bits() == p.Addr().BitLen() {
		return []expr.Any{load, &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: want}}
	}
	mask := make([]byte, n)
	for i := 0; i < p.Bits(); i++ {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	return []expr.Any{load,
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: n, Mask: mask, Xor: make([]byte, n)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: want},
	}
}

func ctState(bits uint32) []expr.Any {
	// ct state is a host-endian bitmask.
	return []expr.Any{
		&expr.Ct{Register: reg1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: make([]byte, 4)},
	}
}

func pinholeMatch(m match, sets map[string]*nftables.Set) ([]expr.Any, error) {
	s, ok := sets[m.set]
	if !ok {
		return nil, fmt.Errorf("%w: rule refers to set %s that the table lacks", errBadRuleset, m.set)
	}
	var addrOff, addrLen uint32 = 12, 4
	if m.v6 {
		addrOff, addrLen = 8, 16
	}
	peerPort, localPort := uint32(0), uint32(2) // th sport, th dport
	if m.kind == mPinholeOut {
		addrOff += addrLen
		peerPort, localPort = 2, 0
	}
	next := uint32(reg32_00 + addrLen/4)
	return []expr.Any{
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: addrOff, Len: addrLen},
		&expr.Payload{DestRegister: canonicalReg(next), Base: expr.PayloadBaseTransportHeader, Offset: peerPort, Len: 2},
		&expr.Payload{DestRegister: canonicalReg(next + 1), Base: expr.PayloadBaseTransportHeader, Offset: localPort, Len: 2},
		&expr.Lookup{SourceRegister: reg1, SetName: s.Name, SetID: s.ID},
	}, nil
}

// exprs renders r into nftables expressions; sets are the table's sets by
// name, for lookups.
func (r rule) exprs(sets map[string]*nftables.Set) ([]expr.Any, error) {
	var out []expr.Any
	meta := func(k expr.MetaKey, op expr.CmpOp, data []byte) {
		out = append(out, &expr.Meta{Key: k, Register: reg1}, &expr.Cmp{Op: op, Register: reg1, Data: data})
	}
	for _, m := range r.matches {
		switch m.kind {
		case mIifLo:
			meta(expr.MetaKeyIIFNAME, expr.CmpOpEq, ifname("lo"))
		case mNotIifLo:
			meta(expr.MetaKeyIIFNAME, expr.CmpOpNeq, ifname("lo"))
		case mOifLo:
			meta(expr.MetaKeyOIFNAME, expr.CmpOpEq, ifname("lo"))
		case mV4:
			meta(expr.MetaKeyNFPROTO, expr.CmpOpEq, []byte{unix.NFPROTO_IPV4})
		case mV6:
			meta(expr.MetaKeyNFPROTO, expr.CmpOpEq, []byte{unix.NFPROTO_IPV6})
		case mL4:
			meta(expr.MetaKeyL4PROTO, expr.CmpOpEq, []byte{byte(m.proto)})
		case mDport:
			out = append(out, portMatch(2, m.ports)...)
		case mSport:
			out = append(out, portMatch(0, m.ports)...)
		case mSaddr:
			out = append(out, addrMatch(m.net, false)...)
		case mDaddr:
			out = append(out, addrMatch(m.net, true)...)
		case mCtInvalid:
			out = append(out, ctState(expr.CtStateBitINVALID)...)
		case mCtEstRel:
			out = append(out, ctState(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED)...)
		case mPinholeIn, mPinholeOut:
			es, err := pinholeMatch(m, sets)
			if err != nil {
				return nil, err
			}
			out = append(out, es...)
		case mICMPv6:
			load := &expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1}
			out = append(out, load)
			if m.lo == m.hi {
				out = append(out, &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{m.lo}})
			} else {
				out = append(out,
					&expr.Cmp{Op: expr.CmpOpGte, Register: reg1, Data: []byte{m.lo}},
					&expr.Cmp{Op: expr.CmpOpLte, Register: reg1, Data: []byte{m.hi}})
			}
		default:
			return nil, fmt.Errorf("%w: unknown match kind %d", errBadRuleset, m.kind)
		}
	}
	v := expr.VerdictDrop
	if r.accept {
		v = expr.VerdictAccept
	}
	return append(out, &expr.Verdict{Kind: v}), nil
}

// fingerprint is a canonical encoding of a rule's expressions, for comparing
// what the kernel holds with what we want. Set IDs only live for one batch
// and counters count, so both are left out.
func fingerprint(fam byte, es []expr.Any) (string, error) {
	var b []byte
	for _, e := range es {
		switch x := e.(type) {
		case *expr.Lookup:
			c := *x
			c.SetID = 0
			e = &c
		case *expr.Counter:
			e = &expr.Counter{}
		}
		m, err := expr.Marshal(fam, e)
		if err != nil {
			return "", fmt.Errorf("marshal %T: %w", e, err)
		}
		b = binary.BigEndian.AppendUint32(b, uint32(len(m)))
		b = append(b, m...)
	}
	return hex.EncodeToString(b), nil
}

// pinholeKey encodes p as an element of its set: address, then each port
// padded to a 4-byte register.
func pinholeKey(p Pinhole) []byte {
	k := p.Peer.Addr().AsSlice()
	k = binary.BigEndian.AppendUint16(k, p.Peer.Port())
	k = append(k, 0, 0)
	k = binary.BigEndian.AppendUint16(k, p.Local)
	return append(k, 0, 0)
}

func pinholeFromKey(k []byte) (Pinhole, bool) {
	var n int
	switch len(k) {
	case 12:
		n = 4
	case 24:
		n = 16
	default:
		return Pinhole{}, false
	}
	a, ok := netip.AddrFromSlice(k[:n])
	if !ok {
		return Pinhole{}, false
	}
	return Pinhole{
		Peer:  netip.AddrPortFrom(a, binary.BigEndian.Uint16(k[n:])),
		Local: binary.BigEndian.Uint16(k[n+4:]),
	}, true
}
