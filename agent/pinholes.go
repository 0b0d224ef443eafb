package agent

import "github.com/hardphone/hardphone/agent/sip"

// pinholes opens the firewall for a call's media when its SDP is agreed and
// closes it when the call ends.
func (a *Agent) pinholes(ev sip.Event) {
	if a.lock == nil || ev.Call == nil {
		return
	}
	switch ev.Kind {
	case sip.EventMedia:
		var ports []uint16
		for _, ap := range ev.Call.Media().LocalAddrs() {
			ports = append(ports, ap.Port())
		}
		if err := a.lock.OpenPinhole(ev.Call.ID(), ev.Call.RemoteMedia(), ports...); err != nil {
			// Media from this peer cannot arrive; the call will fail to key
			// and end, which is the safe outcome.
			a.log.Warn("pinhole refused", "call_id", ev.Call.ID(), "error", err)
		}
	case sip.EventCallEnded:
		if err := a.lock.ClosePinhole(ev.Call.ID()); err != nil {
			a.log.Warn("close pinhole", "call_id", ev.Call.ID(), "error", err)
		}
	}
}
