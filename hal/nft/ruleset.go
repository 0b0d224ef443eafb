package nft

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// TableName is the one nftables table (inet family) this package owns.
const TableName = "hardphone"

// Names of the chains and pinhole sets in the table.
const (
	ChainInput   = "input"
	ChainOutput  = "output"
	ChainForward = "forward"
	// SetRTP4 and SetRTP6 hold pinholes as peer address . peer port . local
	// port.
	SetRTP4 = "rtp4"
	SetRTP6 = "rtp6"
)

// Proto is a transport protocol.
type Proto uint8

// Transport protocols, by IANA protocol number.
const (
	TCP Proto = 6
	UDP Proto = 17

	icmpv6 Proto = 58
)

func (p Proto) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	case icmpv6:
		return "icmpv6"
	}
	return fmt.Sprintf("proto(%d)", uint8(p))
}

// PortRange is an inclusive range of ports; the zero value is no range.
type PortRange struct{ First, Last uint16 }

// IsZero reports whether r is the empty range.
func (r PortRange) IsZero() bool { return r.First == 0 && r.Last == 0 }

// Contains reports whether port p is in r.
func (r PortRange) Contains(p uint16) bool { return !r.IsZero() && p >= r.First && p <= r.Last }

func (r PortRange) String() string {
	if r.First == r.Last {
		return fmt.Sprint(r.First)
	}
	return fmt.Sprintf("%d-%d", r.First, r.Last)
}

// Allow opens one port to one network: in the input chain Net is the source,
// in the output chain the destination. A /0 prefix matches its whole family.
type Allow struct {
	Proto Proto
	Port  uint16
	Net   netip.Prefix
	// Label names the policy entry the rule comes from ("sip-tls"); it ends
	// up in the rule comment. At most 32 bytes of [a-z0-9_.-].
	Label string
}

// Ruleset is the whole content of the hardphone table.
type Ruleset struct {
	// AcceptLoopback accepts everything on lo before any other rule. When
	// false, loopback traffic meets the same rules as any other interface.
	AcceptLoopback bool
	// In lists the input accept rules, in order.
	In []Allow
	// FilterOutput makes the output chain default-drop, with Out (and
	// established/related, loopback and pinholes) accepted. When false the
	// output chain accepts everything and Out must be empty.
	FilterOutput bool
	Out          []Allow
	// RTP is the local UDP port range reserved for media. Traffic to (and,
	// with FilterOutput, from) these ports passes only through a pinhole,
	// never through conntrack state, so closing a pinhole stops the flow at
	// once. The zero range means no media ports and no pinhole sets.
	RTP PortRange
}

// Pinhole lets one remote media endpoint reach one local RTP port.
type Pinhole struct {
	Peer  netip.AddrPort
	Local uint16
}

func (p Pinhole) String() string { return fmt.Sprintf("%s>%d", p.Peer, p.Local) }

// normalize returns p with an IPv4-mapped peer unmapped, so it lands in the
// IPv4 set the kernel matches IPv4 packets against.
func (p Pinhole) normalize() Pinhole {
	p.Peer = netip.AddrPortFrom(p.Peer.Addr().Unmap(), p.Peer.Port())
	return p
}

func (p Pinhole) validate(rtp PortRange) error {
	a := p.Peer.Addr()
	switch {
	case !a.IsValid():
		return fmt.Errorf("%w: peer address missing", errBadPinhole)
	case a.Zone() != "":
		return fmt.Errorf("%w: peer %s has a zone", errBadPinhole, a)
	case a.IsUnspecified() || a.IsMulticast():
		return fmt.Errorf("%w: peer %s is not a unicast address", errBadPinhole, a)
	case p.Peer.Port() == 0:
		return fmt.Errorf("%w: peer %s has port 0", errBadPinhole, p.Peer)
	case !rtp.Contains(p.Local):
		return fmt.Errorf("%w: local port %d outside the RTP range %s", errBadPinhole, p.Local, rtp)
	}
	return nil
}

const maxLabel = 32

const maxComment = 250

func (rs *Ruleset) validate() error {
	check := func(chain string, i int, a Allow) error {
		where := fmt.Sprintf("%s[%d]", chain, i)
		if a.Proto != TCP && a.Proto != UDP {
			return fmt.Errorf("%w: %s: protocol %d, want tcp or udp", errBadRuleset, where, a.Proto)
		}
		if a.Port == 0 {
			return fmt.Errorf("%w: %s: port 0", errBadRuleset, where)
		}
		if !a.Net.IsValid() || a.Net.Addr().Zone() != "" || a.Net.Addr().Is4In6() {
			return fmt.Errorf("%w: %s: network %v, want an IPv4 or IPv6 prefix", errBadRuleset, where, a.Net)
		}
		if a.Net.Masked() != a.Net {
			return fmt.Errorf("%w: %s: network %s has host bits set (want %s)", errBadRuleset, where, a.Net, a.Net.Masked())
		}
		if len(a.Label) > maxLabel || strings.IndexFunc(a.Label, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
		}) >= 0 {
			return fmt.Errorf("%w: %s: label %q, want at most %d of [a-z0-9_.-]", errBadRuleset, where, a.Label, maxLabel)
		}
		if chain == ChainInput && a.Proto == UDP && rs.RTP.Contains(a.Port) {
			return fmt.Errorf("%w: %s: udp port %d is inside the RTP range %s", errBadRuleset, where, a.Port, rs.RTP)
		}
		return nil
	}
	for i, a := range rs.In {
		if err := check(ChainInput, i, a); err != nil {
			return err
		}
	}
	if !rs.FilterOutput && len(rs.Out) > 0 {
		return fmt.Errorf("%w: %d output rules but output is not filtered", errBadRuleset, len(rs.Out))
	}
	for i, a := range rs.Out {
		if err := check(ChainOutput, i, a); err != nil {
			return err
		}
	}
	if !rs.RTP.IsZero() && (rs.RTP.First == 0 || rs.RTP.First > rs.RTP.Last) {
		return fmt.Errorf("%w: RTP range %d-%d", errBadRuleset, rs.RTP.First, rs.RTP.Last)
	}
	return nil
}

// match is one condition of a rule, in the order the rule tests them.
type match struct {
	kind matchKind
	// proto for mL4; ports for mDport/mSport; net for mSaddr/mDaddr; set
	// and the set's family for mPinholeIn/mPinholeOut; lo/hi for mICMPv6.
	proto  Proto
	ports  PortRange
	net    netip.Prefix
	set    string
	v6     bool
	lo, hi uint8
}

type matchKind uint8

const (
	mIifLo      matchKind = iota + 1 // iifname "lo"
	mNotIifLo                        // iifname != "lo"
	mOifLo                           // oifname "lo"
	mV4                              // meta nfproto ipv4
	mV6                              // meta nfproto ipv6
	mL4                              // meta l4proto
	mDport                           // th dport (range)
	mSport                           // th sport (range)
	mSaddr                           // ip/ip6 saddr prefix
	mDaddr                           // ip/ip6 daddr prefix
	mCtInvalid                       // ct state invalid
	mCtEstRel                        // ct state established,related
	mPinholeIn                       // saddr . sport . dport @set
	mPinholeOut                      // daddr . dport . sport @set
	mICMPv6                          // icmpv6 type lo-hi
)

// rule is one rendered rule: its matches, its verdict and the canonical text
// that is also its comment in the kernel.
type rule struct {
	chain   string
	matches []match
	accept  bool
	text    string
}

func (m match) String() string {
	switch m.kind {
	case mIifLo:
		return "iifname lo"
	case mNotIifLo:
		return "iifname != lo"
	case mOifLo:
		return "oifname lo"
	case mV4:
		return "meta nfproto ipv4"
	case mV6:
		return "meta nfproto ipv6"
	case mL4:
		return "meta l4proto " + m.proto.String()
	case mDport:
		return "th dport " + m.ports.String()
	case mSport:
		return "th sport " + m.ports.String()
	case mSaddr, mDaddr:
		fam, dir := "ip", "saddr"
		if m.net.Addr().Is6() {
			fam = "ip6"
		}
		if m.kind == mDaddr {
			dir = "daddr"
		}
		return fmt.Sprintf("%s %s %s", fam, dir, m.net)
	case mCtInvalid:
		return "ct state invalid"
	case mCtEstRel:
		return "ct state established,related"
	case mPinholeIn, mPinholeOut:
		fam := "ip"
		if m.v6 {
			fam = "ip6"
		}
		if m.kind == mPinholeIn {
			return fmt.Sprintf("%s saddr . th sport . th dport @%s", fam, m.set)
		}
		return fmt.Sprintf("%s daddr . th dport . th sport @%s", fam, m.set)
	case mICMPv6:
		if m.lo == m.hi {
			return fmt.Sprintf("icmpv6 type %d", m.lo)
		}
		return fmt.Sprintf("icmpv6 type %d-%d", m.lo, m.hi)
	}
	return "?"
}

func newRule(chain string, accept bool, label string, ms ...match) rule {
	parts := make([]string, 0, len(ms)+2)
	for _, m := range ms {
		parts = append(parts, m.String())
	}
	if accept {
		parts = append(parts, "accept")
	} else {
		parts = append(parts, "drop")
	}
	text := strings.Join(parts, " ")
	if label != "" {
		text += " # " + label
	}
	// The comment is one user-data TLV with a one-byte length.
	if len(text) > maxComment {
		text = text[:maxComment]
	}
	return rule{chain: chain, matches: ms, accept: accept, text: text}
}

// ICMPv6 types 133-136 are router and neighbour solicitation and
// advertisement: without them IPv6 stops resolving neighbours. Conntrack
// leaves them untracked, so they are accepted before the ct state rules.
const icmpv6NDFirst, icmpv6NDLast = 133, 136

// rules renders rs into the rules of every chain, in order.
func (rs *Ruleset) rules() []rule {
	var out []rule
	add := func(r rule) { out = append(out, r) }
	udp := match{kind: mL4, proto: UDP}
	icmp6 := match{kind: mL4, proto: icmpv6}

	// input
	if rs.AcceptLoopback {
		add(newRule(ChainInput, true, "loopback", match{kind: mIifLo}))
	}
	// Loopback addresses arriving on a real interface are spoofed.
	add(newRule(ChainInput, false, "spoofed loopback", match{kind: mNotIifLo}, match{kind: mV4}, match{kind: mSaddr, net: netip.MustParsePrefix("127.0.0.0/8")}))
	add(newRule(ChainInput, false, "spoofed loopback", match{kind: mNotIifLo}, match{kind: mV6}, match{kind: mSaddr, net: netip.MustParsePrefix("::1/128")}))
	add(newRule(ChainInput, true, "neighbour discovery", match{kind: mV6}, icmp6, match{kind: mICMPv6, lo: icmpv6NDFirst, hi: icmpv6NDLast}))
	add(newRule(ChainInput, false, "invalid", match{kind: mCtInvalid}))
	if !rs.RTP.IsZero() {
		dport := match{kind: mDport, ports: rs.RTP}
		add(newRule(ChainInput, true, "rtp pinhole", match{kind: mV4}, udp, dport, match{kind: mPinholeIn, set: SetRTP4}))
		add(newRule(ChainInput, true, "rtp pinhole", match{kind: mV6}, udp, dport, match{kind: mPinholeIn, set: SetRTP6, v6: true}))
		add(newRule(ChainInput, false, "rtp without pinhole", udp, dport))
	}
	add(newRule(ChainInput, true, "", match{kind: mCtEstRel}))
	for _, a := range rs.In {
		add(newRule(ChainInput, true, a.Label, allowMatches(a, mSaddr)...))
	}

	// output
	if rs.FilterOutput {
		if rs.AcceptLoopback {
			add(newRule(ChainOutput, true, "loopback", match{kind: mOifLo}))
		}
		add(newRule(ChainOutput, true, "neighbour discovery", match{kind: mV6}, icmp6, match{kind: mICMPv6, lo: icmpv6NDFirst, hi: icmpv6NDLast}))
		// MLDv2 reports (type 143) go out whenever an interface joins a
		// multicast group, neighbour discovery's solicited-node groups
		// included.
		add(newRule(ChainOutput, true, "mld report", match{kind: mV6}, icmp6, match{kind: mICMPv6, lo: 143, hi: 143}))
		if !rs.RTP.IsZero() {
			sport := match{kind: mSport, ports: rs.RTP}
			add(newRule(ChainOutput, true, "rtp pinhole", match{kind: mV4}, udp, sport, match{kind: mPinholeOut, set: SetRTP4}))
			add(newRule(ChainOutput, true, "rtp pinhole", match{kind: mV6}, udp, sport, match{kind: mPinholeOut, set: SetRTP6, v6: true}))
			add(newRule(ChainOutput, false, "rtp without pinhole", udp, sport))
		}
		add(newRule(ChainOutput, true, "", match{kind: mCtEstRel}))
		for _, a := range rs.Out {
			add(newRule(ChainOutput, true, a.Label, allowMatches(a, mDaddr)...))
		}
	}
	return out
}

func allowMatches(a Allow, addrKind matchKind) []match {
	fam := match{kind: mV4}
	if a.Net.Addr().Is6() {
		fam = match{kind: mV6}
	}
	ms := []match{fam, {kind: mL4, proto: a.Proto}, {kind: mDport, ports: PortRange{a.Port, a.Port}}}
	if a.Net.Bits() > 0 {
		ms = append(ms, match{kind: addrKind, net: a.Net})
	}
	return ms
}

// chainSpec is one base chain of the table.
type chainSpec struct {
	name   string
	hook   string // input, output, forward
	accept bool   // policy
}

func (rs *Ruleset) chains() []chainSpec {
	return []chainSpec{
		{ChainInput, "input", false},
		{ChainForward, "forward", false},
		{ChainOutput, "output", !rs.FilterOutput},
	}
}

func (c chainSpec) String() string {
	pol := "drop"
	if c.accept {
		pol = "accept"
	}
	return fmt.Sprintf("chain %s { type filter hook %s priority filter; policy %s; }", c.name, c.hook, pol)
}

// Describe returns the table as the lines Diff and plans speak in: one per
// chain, set and rule, in order.
func (rs Ruleset) Describe() ([]string, error) {
	if err := rs.validate(); err != nil {
		return nil, err
	}
	return rs.describe(), nil
}

func (rs *Ruleset) describe() []string {
	var out []string
	for _, c := range rs.chains() {
		out = append(out, c.String())
	}
	if !rs.RTP.IsZero() {
		out = append(out, setLine(SetRTP4, false), setLine(SetRTP6, true))
	}
	for _, r := range rs.rules() {
		out = append(out, r.chain+": "+r.text)
	}
	return out
}

func setLine(name string, v6 bool) string {
	t := "ipv4_addr"
	if v6 {
		t = "ipv6_addr"
	}
	return fmt.Sprintf("set %s { type %s . inet_service . inet_service; }", name, t)
}

// lineDiff compares want and got line lists and returns "+ line" for what
// is missing and "- line" for what should not be there, in order. Rules are
// order-sensitive, so a moved rule shows as removed and added.
func lineDiff(want, got []string) []string {
	// Longest common subsequence; tables here are tens of lines.
	n, m := len(want), len(got)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if want[i] == got[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out []string
	i, j := 0, 0
	for i < n && j < m {
		switch {
		case want[i] == got[j]:
			i++
			j++
		case lcs[i+1][j] >= lcs[i][j+1]:
			out = append(out, "+ "+want[i])
			i++
		default:
			out = append(out, "- "+got[j])
			j++
		}
	}
	for ; i < n; i++ {
		out = append(out, "+ "+want[i])
	}
	for ; j < m; j++ {
		out = append(out, "- "+got[j])
	}
	return slices.Clip(out)
}
