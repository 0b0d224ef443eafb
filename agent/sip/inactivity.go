package sip

// Media inactivity: a call whose peer stopped sending is ended, so a
// caller that vanished (or never meant to talk) does not hold a line, its
// ports and its pinholes forever. Only authenticated packets count: SRTP
// and SRTCP that passed the replay window. A held call goes on exchanging
// SRTCP reports (RFC 3264 §5.1: RTCP is sent even when inactive), so hold
// does not trip it.

import (
	"context"
	"time"

	"github.com/emiago/sipgo/sip"
)

// watchMedia ends the call with a BYE carrying a Reason (RFC 3326) once
// media.inactivity_timeout passes without an authenticated packet. It
// returns when the call ends.
func (c *Call) watchMedia() {
	d := c.acct.media.InactivityTimeout
	if d <= 0 {
		return
	}
	received := func() uint64 {
		st := c.media.Stats()
		return st.PacketsReceived + st.RTCPReceived
	}
	if !idleFor(c.done, c.acct.clock, d, received) {
		return
	}
	c.acct.count(&c.acct.counters.MediaInactive)
	c.log.Warn("no media from the peer: ending the call", "inactivity_timeout", d)
	c.hangup(context.Background(), "media inactivity",
		sip.NewHeader("Reason", `SIP ;cause=408 ;text="media inactivity timeout"`))
}

// idleFor polls received every quarter of d and reports true once its value
// has not changed for d, false when done closes first.
func idleFor(done <-chan struct{}, clock Clock, d time.Duration, received func() uint64) bool {
	step := max(d/4, 100*time.Millisecond)
	last, since := received(), clock.Now()
	for {
		select {
		case <-done:
			return false
		case <-clock.After(step):
		}
		select {
		case <-done: // ended meanwhile: nothing to end
			return false
		default:
		}
		now := clock.Now()
		if n := received(); n != last {
			last, since = n, now
			continue
		}
		if now.Sub(since) >= d {
			return true
		}
	}
}
