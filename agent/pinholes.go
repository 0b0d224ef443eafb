package agent

import "github.com/hardphone/hardphone/agent/sip"

// pinholes opens the firewall for a call's media when its SDP is agreed and
// closes it when the call ends. Pinholes are keyed by the call's dialog,
// never its Call-ID alone: two dialogs may share a Call-ID, and closing one
// must not close (or keep open) the other's.
func (a *Agent) pinholes(ev sip.Event) {
	if a.lock == nil || ev.Call == nil {
		return
	}
	key := ev.Call.Dialog().String()
	switch ev.Kind {
	case sip.EventMedia:
		var ports []uint16
		for _, ap := range ev.Call.Media().LocalAddrs() {
			ports = append(ports, ap.Port())
		}
		if err := a.lock.OpenPinhole(key, ev.Call.RemoteMedia(), ports...); err != nil {
			// Media from this peer cannot arrive; the call will fail to key
			// and end, which is the safe outcome.
			a.log.Warn("pinhole refused", "dialog", key, "error", err)
		}
	case sip.EventCallEnded:
		if err := a.lock.ClosePinhole(key); err != nil {
			a.log.Warn("close pinhole", "dialog", key, "error", err)
		}
	}
}
