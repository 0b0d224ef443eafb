package agent

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/hardphone/hardphone/agent/events"
	"github.com/hardphone/hardphone/agent/lockdown"
	"github.com/hardphone/hardphone/agent/sip"
)

// EventRecorder takes security events; events.Recorder is one. Record must
// not block (the recorder queues and rate-limits).
type EventRecorder interface {
	Record(events.Event) error
}

// srtpNoise is how many SRTP authentication failures or replays one call
// may see before it is a security event: a few come from packet damage and
// from a peer's plaintext RTCP, dozens do not.
const srtpNoise = 20

// WithEvents makes the agent record its security events into rec, and run
// the background loops (the recorder's journal writer, the exporter) for
// as long as Run runs.
func WithEvents(rec EventRecorder, loops ...func(context.Context) error) Option {
	return func(a *Agent) error {
		if rec == nil {
			return errors.New("agent: nil event recorder")
		}
		a.events, a.eventLoops = rec, append(a.eventLoops, loops...)
		return nil
	}
}

// record hands an event to the recorder, if any.
func (a *Agent) record(ev events.Event) {
	if a.events == nil {
		return
	}
	if err := a.events.Record(ev); err != nil {
		a.log.Warn("security event", "kind", string(ev.Kind), "error", err)
	}
}

// incidentKinds maps the SIP layer's incidents to security event kinds.
var incidentKinds = map[sip.Incident]events.Kind{
	sip.IncidentForeignSource:    events.KindForeignSource,
	sip.IncidentScanner:          events.KindScanner,
	sip.IncidentForeignDialog:    events.KindForeignDialog,
	sip.IncidentREFERRefused:     events.KindREFERRefused,
	sip.IncidentINVITEFlood:      events.KindINVITEFlood,
	sip.IncidentCallCap:          events.KindCallCap,
	sip.IncidentChallengeRefused: events.KindChallengeRefused,
	sip.IncidentMediaDestination: events.KindMediaRefused,
	sip.IncidentAuthFailure:      events.KindSIPAuthFailure,
	sip.IncidentDialRefused:      events.KindDialRefused,
}

// sipIncident records the SIP layer's security incidents.
func (a *Agent) sipIncident(ev sip.Event) {
	if ev.Kind != sip.EventSecurity || ev.Security == nil {
		return
	}
	kind, ok := incidentKinds[ev.Security.Incident]
	if !ok {
		a.log.Error("SIP incident without an event kind", "incident", string(ev.Security.Incident))
		return
	}
	d := events.Detail{}
	if ev.Security.Method != "" {
		d["method"] = ev.Security.Method
	}
	if ev.Security.Detail != "" {
		d["reason"] = ev.Security.Detail
	}
	a.record(events.Event{Kind: kind, Account: ev.Account, Peer: ev.Security.Peer, Detail: d})
}

// callSecurity turns a finished call's SRTP counters into events when they
// are beyond noise.
func (a *Agent) callSecurity(ev sip.Event) {
	if ev.Kind != sip.EventCallEnded || ev.Call == nil {
		return
	}
	st := ev.Call.Media().Stats()
	var peer events.Event
	if rm := ev.Call.RemoteMedia(); len(rm) > 0 {
		peer.Peer = rm[0]
	}
	if st.AuthFailures+st.RTCPDropped > srtpNoise {
		e := peer
		e.Kind, e.Account = events.KindSRTPAuthFailure, ev.Account
		e.Detail = events.Detail{"failures": strconv.FormatUint(st.AuthFailures, 10), "rtcp_dropped": strconv.FormatUint(st.RTCPDropped, 10)}
		a.record(e)
	}
	if st.Replays > srtpNoise {
		e := peer
		e.Kind, e.Account = events.KindSRTPReplay, ev.Account
		e.Detail = events.Detail{"replays": strconv.FormatUint(st.Replays, 10)}
		a.record(e)
	}
}

// lockdownDrift records one event per drifting finding.
func (a *Agent) lockdownDrift(r *lockdown.Report) {
	for _, f := range r.Drift {
		d := events.Detail{"finding": f.Kind, "subject": f.Subject}
		if f.Process != "" {
			d["process"] = f.Process
		}
		if f.Got != "" {
			d["got"] = f.Got
		}
		a.record(events.Event{Kind: events.KindLockdownDrift, Detail: d})
	}
}

// controlRefused records a refused control-socket caller.
func (a *Agent) controlRefused(uid uint32) {
	a.record(events.Event{Kind: events.KindControlRefused, Detail: events.Detail{"uid": fmt.Sprint(uid)}})
}

// EventJournal is the journal as the control protocol reads it.
type EventJournal interface {
	List(from uint64, limit int) ([]events.Record, error)
	Verify() (*events.Report, error)
}

// WithEventJournal lets control clients list and verify the journal.
func WithEventJournal(j EventJournal) Option {
	return func(a *Agent) error {
		if j == nil {
			return errors.New("agent: nil event journal")
		}
		a.journal = j
		return nil
	}
}
