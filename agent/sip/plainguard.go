package sip

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"

	"github.com/emiago/sipgo/sip"
)

// A plain UDP listener takes requests from its one peer only (policy.go),
// and everything else is a scanner, a flood or a mistake. Refused in the
// handler, each such datagram would first cost what sipgo spends on a
// request: a goroutine, a server transaction kept for RFC 3261's timers
// (an INVITE's 403 is retransmitted and its ACK awaited for Timer H,
// 32 s), and an entry in its connection pool for every source address and
// port, never removed while the listener lives. A flood at a few thousand
// datagrams a second then holds tens of thousands of goroutines and
// hundreds of megabytes, and a spray from many ports grows the pool for
// good. plainUDP therefore refuses foreign datagrams as they are read,
// before sipgo sees them, as a stateless UAS (RFC 3261 §8.2.7: "It
// replies to requests normally, but discards any state that would
// ordinarily be retained by a UAS after a response has been sent"): the
// same 403, counter and security event as the handler's refusal, and
// nothing kept but a bounded memory of the last transactions refused (so a
// retransmission, answered again as §8.2.7 says, is counted once); the
// ACK of a 403 is dropped (an ACK has no response and nothing of
// ours to act on, §17.2.1), and so is anything that does not parse as a
// request, counted.

// refusedTxsMax is how many refused transactions a plain UDP listener
// remembers (about 1 MB when full, strings included): at a few thousand
// datagrams a second that covers the first retransmissions (T1 = 500 ms,
// then 1 s, RFC 3261 §17.1.1.2) of a request whose 403 was lost, so they
// count once.
const refusedTxsMax = 4096

// plainUDP is a plain UDP listener's socket as sipgo reads it.
type plainUDP struct {
	net.PacketConn
	a *Account
}

// ReadFrom returns the next datagram from the listener's peer; every other
// one is refused on the way.
func (c plainUDP) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil {
			return n, addr, err
		}
		src, ok := udpSource(addr)
		if ok && src == c.a.plainPeer {
			return n, addr, nil
		}
		c.a.refuseDatagram(c.PacketConn, p[:n], addr, src)
	}
}

// udpSource is addr as an unmapped AddrPort.
func udpSource(addr net.Addr) (netip.AddrPort, bool) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return netip.AddrPort{}, false
	}
	ap := ua.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}

// refuseDatagram refuses one datagram from a foreign source: 403 to a
// request, nothing to an ACK, whitespace (a keepalive) or a datagram that
// is not a request. Everything but whitespace and ACKs is counted and
// reported like the handler's refusals.
func (a *Account) refuseDatagram(pc net.PacketConn, data []byte, addr net.Addr, src netip.AddrPort) {
	if len(bytes.TrimSpace(bytes.Trim(data, "\x00"))) == 0 {
		return
	}
	why := fmt.Errorf("%w: UDP from %s, plain listeners take requests from %s only", errNotFromRegistrar, addr, a.plainPeer)
	msg, err := sip.ParseMessage(data)
	req, isReq := msg.(*sip.Request)
	if err != nil || !isReq {
		a.mu.Lock()
		a.counters.ForeignSource++
		n := a.counters.ForeignSource
		a.mu.Unlock()
		if n <= 10 || n%100 == 0 {
			a.log.Warn("datagram refused", "peer", addr.String(), "error", why, "refused_total", n)
		}
		a.incident(Security{Incident: IncidentForeignSource, Peer: src, Detail: "not a SIP request, not from the listener's peer"})
		return
	}
	if req.IsAck() {
		return
	}
	req.SetSource(addr.String())
	req.SetTransport("UDP")
	// A retransmission is answered again and counted once, as a
	// transaction would (its ID remembered for Timer H, within a bound).
	if !a.refusedTx.remember(req, a.clock.Now()) {
		a.refused(req, why)
	}
	res := sip.NewResponseFromRequest(req, 403, "Forbidden", nil)
	if _, err := pc.WriteTo([]byte(res.String()), addr); err != nil {
		a.log.Debug("stateless 403", "peer", addr.String(), "error", err)
	}
}
