package lockdown

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/hardphone/hardphone/hal/nft"
)

// Bounds on one call's pinholes: RTP and RTCP from a peer or two (ICE may
// offer a few), to our RTP and RTCP ports.
const (
	maxPinholePeers = 8
	maxPinholePorts = 4
	// maxCallIDLen bounds a call's key: the agent passes the dialog
	// (Call-ID of up to 256 bytes, two tags of up to 128, separators).
	maxCallIDLen = 640
)

// OpenPinhole lets media of call callID through: UDP from every peer
// address and port to every local port (so for RTP and RTCP on separate
// ports, pass both peer endpoints and both local ports). The agent calls it
// when a call's SDP is agreed, with the peer endpoints from the SDP and the
// local ports media bound; calling it again for the same call (a re-INVITE)
// replaces that call's pinholes. Peers must be unicast, inside the policy's
// rtp.peers, and local ports inside rtp.ports.
func (l *Lockdown) OpenPinhole(callID string, peers []netip.AddrPort, localPorts ...uint16) error {
	want, err := l.pinholesFor(callID, peers, localPorts)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.calls[callID]
	var add, del []nft.Pinhole
	for _, p := range want {
		if l.refs[p] == 0 {
			add = append(add, p)
		}
	}
	for _, p := range old {
		if !slices.Contains(want, p) && l.refs[p] == 1 {
			del = append(del, p)
		}
	}
	if len(add) > 0 {
		if err := l.fw.AddPinholes(add); err != nil {
			return fmt.Errorf("open pinhole for call %q: %w", callID, err)
		}
	}
	if len(del) > 0 {
		if err := l.fw.DelPinholes(del); err != nil {
			return fmt.Errorf("update pinhole for call %q: %w", callID, err)
		}
	}
	for _, p := range old {
		l.unref(p)
	}
	for _, p := range want {
		l.refs[p]++
	}
	l.calls[callID] = want
	l.log.Info("pinhole opened", "call_id", callID, "peers", fmt.Sprint(peers), "local_ports", fmt.Sprint(localPorts))
	return nil
}

// ClosePinhole removes the pinholes of call callID; the agent calls it at
// hang-up. Closing a call that has none is not an error, so a repeated
// hang-up event is harmless.
func (l *Lockdown) ClosePinhole(callID string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	ps, ok := l.calls[callID]
	if !ok {
		return nil
	}
	var del []nft.Pinhole
	for _, p := range ps {
		if l.refs[p] == 1 {
			del = append(del, p)
		}
	}
	if len(del) > 0 {
		if err := l.fw.DelPinholes(del); err != nil {
			// The call keeps its entry, so a retry can close it.
			return fmt.Errorf("close pinhole for call %q: %w", callID, err)
		}
	}
	for _, p := range ps {
		l.unref(p)
	}
	delete(l.calls, callID)
	l.log.Info("pinhole closed", "call_id", callID)
	return nil
}

// unref drops one call's use of p; l.mu must be held.
func (l *Lockdown) unref(p nft.Pinhole) {
	if l.refs[p] <= 1 {
		delete(l.refs, p)
		return
	}
	l.refs[p]--
}

// pinholesFor checks a pinhole request against the policy and returns its
// elements.
func (l *Lockdown) pinholesFor(callID string, peers []netip.AddrPort, localPorts []uint16) ([]nft.Pinhole, error) {
	r := l.policy.RTP
	switch {
	case r == nil:
		return nil, fmt.Errorf("%w: %w", ErrPinholeRefused, errNoRTP)
	case callID == "" || len(callID) > maxCallIDLen:
		return nil, fmt.Errorf("%w: call ID of %d bytes, want 1 to %d", ErrPinholeRefused, len(callID), maxCallIDLen)
	case len(peers) == 0 || len(peers) > maxPinholePeers:
		return nil, fmt.Errorf("%w: call %q: %d peers, want 1 to %d", ErrPinholeRefused, callID, len(peers), maxPinholePeers)
	case len(localPorts) == 0 || len(localPorts) > maxPinholePorts:
		return nil, fmt.Errorf("%w: call %q: %d local ports, want 1 to %d", ErrPinholeRefused, callID, len(localPorts), maxPinholePorts)
	}
	var out []nft.Pinhole
	for _, lp := range localPorts {
		if !r.Contains(lp) {
			return nil, fmt.Errorf("%w: call %q: local port %d outside rtp.ports %d-%d", ErrPinholeRefused, callID, lp, r.First, r.Last)
		}
	}
	for _, pe := range peers {
		a := pe.Addr().Unmap()
		if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() || a.Zone() != "" || pe.Port() == 0 {
			return nil, fmt.Errorf("%w: call %q: peer %s is not a unicast address and port", ErrPinholeRefused, callID, pe)
		}
		if !slices.ContainsFunc(r.Peers, func(n netip.Prefix) bool { return n.Contains(a) }) {
			return nil, fmt.Errorf("%w: call %q: peer %s outside rtp.peers", ErrPinholeRefused, callID, a)
		}
		for _, lp := range localPorts {
			p := nft.Pinhole{Peer: netip.AddrPortFrom(a, pe.Port()), Local: lp}
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// ClearPinholes removes every pinhole in the kernel that no call of this
// Lockdown accounts for: a previous agent that died with calls up leaves
// its pinholes behind (Apply carries live set elements over), and the
// agent, which owns all pinholes and has no calls at start, calls this
// right after Apply. It returns how many it removed.
func (l *Lockdown) ClearPinholes() (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	live, err := l.observePinholes()
	if err != nil {
		return 0, err
	}
	var stale []nft.Pinhole
	for _, p := range live {
		if l.refs[p] == 0 {
			stale = append(stale, p)
		}
	}
	if len(stale) == 0 {
		return 0, nil
	}
	if err := l.fw.DelPinholes(stale); err != nil {
		return 0, fmt.Errorf("clear stale pinholes: %w", err)
	}
	l.log.Warn("stale pinholes removed", "count", len(stale))
	return len(stale), nil
}
