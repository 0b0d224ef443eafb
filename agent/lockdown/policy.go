package lockdown

import (
	"net/netip"
	"slices"
	"strings"
)

// Policy is a validated lockdown policy. Treat it as immutable: Parse
// returns a fresh value and nothing in this package writes to one.
type Policy struct {
	// Loopback says whether loopback traffic is accepted wholesale
	// (LoopbackOpen) or meets the listener rules (LoopbackRestrict).
	Loopback Mode
	// Outbound says whether the phone may connect anywhere (OutboundOpen)
	// or only to Destinations (OutboundRestrict, the default).
	Outbound Mode
	// Listeners are the only sockets that may listen, each reachable only
	// from its networks. SIP over UDP or TCP, admin and debug listeners are
	// off unless listed.
	Listeners []Listener
	// RTP is the media port range; nil means no media and no pinholes.
	RTP *RTP
	// Destinations are where the phone may connect when Outbound is
	// restricted: registrar, provisioning, time, syslog, DNS.
	Destinations []Destination
	// Services must not run.
	Services []Service
	// BlockModules are kernel modules that must not load, in the kernel's
	// spelling (usb_storage).
	BlockModules []string
	// Sysctls are kernel parameters and their values, sorted by key.
	Sysctls []Sysctl
}

// Mode is a firewall mode.
type Mode string

// Firewall modes.
const (
	LoopbackOpen     Mode = "open"
	LoopbackRestrict Mode = "restrict"
	OutboundOpen     Mode = "open"
	OutboundRestrict Mode = "restrict"
)

// Proto is a transport protocol.
type Proto string

// Transport protocols.
const (
	TCP Proto = "tcp"
	UDP Proto = "udp"
)

// Listener roles with a meaning to the agent. Other names are allowed for
// other listeners.
const (
	RoleSIPTLS = "sip-tls"
	RoleSIPUDP = "sip-udp"
	RoleSIPTCP = "sip-tcp"
	RoleAdmin  = "admin"
	RoleDebug  = "debug"
)

// Listener is one socket that may listen.
type Listener struct {
	Name  string
	Proto Proto
	Port  uint16
	// From lists the networks that may connect; never empty.
	From []netip.Prefix
	// Process, when not empty, is the only process name that may own the
	// socket; the checker reports any other owner.
	Process string
}

// RTP is the media port range.
type RTP struct {
	First, Last uint16
	// Peers lists the networks media may come from; OpenPinhole refuses
	// others.
	Peers []netip.Prefix
	// Process, when not empty, is the only process that may bind RTP ports.
	Process string
}

// Contains reports whether port is in the RTP range.
func (r *RTP) Contains(port uint16) bool { return r != nil && port >= r.First && port <= r.Last }

// Destination is one outbound flow the phone may open.
type Destination struct {
	Name  string
	Proto Proto
	Port  uint16
	To    []netip.Prefix
}

// Service is one OS service that must not run.
type Service struct {
	// Name is the unit or init script name (dropbear, ssh, telnetd).
	Name string
	// Processes are the process names that show it runs; never empty
	// (Name when the policy names none).
	Processes []string
}

// Sysctl is one kernel parameter and the value it must have.
type Sysctl struct {
	Key, Value string
}

// Listener returns the listener with that name (a role such as
// RoleSIPTLS), and whether the policy has one.
func (p *Policy) Listener(name string) (Listener, bool) {
	i := slices.IndexFunc(p.Listeners, func(l Listener) bool { return l.Name == name })
	if i < 0 {
		return Listener{}, false
	}
	return p.Listeners[i], true
}

// allowsListen reports whether a socket of proto bound to port may exist,
// and the process name that must own it ("" for any).
func (p *Policy) allowsListen(proto Proto, port uint16) (process string, ok bool) {
	for _, l := range p.Listeners {
		if l.Proto == proto && l.Port == port {
			return l.Process, true
		}
	}
	if proto == UDP && p.RTP.Contains(port) {
		return p.RTP.Process, true
	}
	return "", false
}

// normalizeModule returns the kernel's spelling of a module name: modprobe
// treats - and _ alike, /proc/modules shows _.
func normalizeModule(m string) string { return strings.ReplaceAll(m, "-", "_") }
