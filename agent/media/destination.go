package media

// Where media may be sent. The peer's SDP names the address the phone
// streams to (c=, m= port, a=rtcp); a hostile caller aims it at something
// that is not a phone: this host's own services, its LAN neighbours'
// link-local addresses, a multicast group, a well-known port. With
// auto-answer that turns the phone into a reflector. So the address is
// checked before the session takes it, offers and answers alike.

import (
	"fmt"
	"net/netip"
	"slices"
)

// DestinationPolicy says where this phone may send media. Its zero value
// refuses every special address below and allows every other unicast
// address at port 1024 or above.
//
// Refused unless Allow names them: loopback (127.0.0.0/8, ::1), link-local
// (169.254.0.0/16, fe80::/10), multicast (224.0.0.0/4, ff00::/8), the
// phone's own addresses (Own), and ports below 1024. Never allowed: the
// unspecified and the broadcast address, port 0, and the phone's own RTP
// range on one of its own addresses (media sent to itself).
//
// A prefix in Allow lifts the refusal of an address it contains only when
// it is no wider than the address's class: 127.0.0.0/8 allows loopback,
// 0.0.0.0/0 (a policy that allows every peer) allows none of the special
// addresses. An own address that is not loopback, and a port below 1024,
// need a host prefix (/32 or /128) naming the address.
type DestinationPolicy struct {
	// Allow lists the networks explicitly allowed: the config's
	// media.allow_peers and the lockdown policy's rtp.peers.
	Allow []netip.Prefix
	// Own lists the phone's own addresses.
	Own []netip.Addr
	// Check, when set, is asked about every destination that passed the
	// rules above and refuses with an error: the agent's bound from the
	// lockdown policy (media may go only to its rtp.peers).
	Check func(netip.AddrPort) error
}

// special classes, with the prefix length of the class: an allowance must
// be at least this narrow to lift the refusal.
var specialClasses = []struct {
	name   string
	prefix netip.Prefix
}{
	{"loopback", netip.MustParsePrefix("127.0.0.0/8")},
	{"loopback", netip.MustParsePrefix("::1/128")},
	{"link-local", netip.MustParsePrefix("169.254.0.0/16")},
	{"link-local", netip.MustParsePrefix("fe80::/10")},
	{"multicast", netip.MustParsePrefix("224.0.0.0/4")},
	{"multicast", netip.MustParsePrefix("ff00::/8")},
}

// checkDestination applies the policy to one destination the peer's SDP
// names; ownPorts is the phone's RTP port range (0, 0 for none). The error
// wraps ErrDestination and ErrNotAcceptable.
func (p *DestinationPolicy) checkDestination(ap netip.AddrPort, ownMin, ownMax uint16) error {
	a := ap.Addr().Unmap()
	refuse := func(why string) error {
		return fmt.Errorf("peer media address %s: %s: %w: %w", ap, why, ErrDestination, ErrNotAcceptable)
	}
	switch {
	case !a.IsValid() || a.IsUnspecified():
		return refuse("unspecified address")
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return refuse("broadcast address")
	case ap.Port() == 0:
		return refuse("port 0")
	case a.Zone() != "":
		return refuse("scoped address")
	}
	own := a.IsLoopback() || slices.Contains(p.Own, a)
	if own && ownMin != 0 && ap.Port() >= ownMin && ap.Port() <= ownMax {
		return refuse("the phone's own RTP port")
	}
	for _, c := range specialClasses {
		if c.prefix.Contains(a) && !p.allows(a, c.prefix.Bits()) {
			return refuse(c.name + " address")
		}
	}
	if own && !a.IsLoopback() && !p.allows(a, a.BitLen()) {
		return refuse("the phone's own address")
	}
	if ap.Port() < 1024 && !p.allows(a, a.BitLen()) {
		return refuse("port below 1024")
	}
	if p.Check != nil {
		if err := p.Check(netip.AddrPortFrom(a, ap.Port())); err != nil {
			return refuse(err.Error())
		}
	}
	return nil
}

// allows reports whether an Allow prefix of at least minBits contains a.
func (p *DestinationPolicy) allows(a netip.Addr, minBits int) bool {
	for _, n := range p.Allow {
		if n.Bits() >= minBits && n.Contains(a) {
			return true
		}
	}
	return false
}

// copy returns a policy with its own slices.
func (p DestinationPolicy) copy() DestinationPolicy {
	p.Allow = slices.Clone(p.Allow)
	p.Own = slices.Clone(p.Own)
	return p
}
