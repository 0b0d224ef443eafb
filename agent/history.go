package agent

import (
	"errors"
	"sync"
	"time"

	"github.com/hardphone/hardphone/agent/control"
	"github.com/hardphone/hardphone/agent/history"
	"github.com/hardphone/hardphone/agent/sip"
)

// WithHistory makes the agent keep a call history and answer the history
// and contacts commands from book.
func WithHistory(book *history.Book) Option {
	return func(a *Agent) error {
		if book == nil {
			return errors.New("agent: nil history")
		}
		a.book = book
		return nil
	}
}

// callTimes remembers when each live call began and was answered, for its
// history entry. Bounded by the live calls: an entry leaves at call end.
type callTimes struct {
	mu sync.Mutex
	m  map[*sip.Call]callTime
}

type callTime struct {
	start, answered time.Time
}

// historyWatch turns call events into history entries.
func (a *Agent) historyWatch(ev sip.Event) {
	if a.book == nil {
		return
	}
	if s := ev.Security; ev.Kind == sip.EventSecurity && s != nil && s.Incident == sip.IncidentDialRefused && s.Target != "" {
		// A call the dialling policy refused is an attempt the person (or
		// whoever holds the account) made: it is in the history, and in
		// what the fleet's call rules judge (a premium number dialled is
		// flagged whether or not the phone let it through).
		e := history.Entry{Account: ev.Account, Direction: "out", Peer: s.Target, Start: time.Now().UTC(),
			EndReason: "refused by the dialling policy"}
		go func() {
			if err := a.book.Add(e); err != nil {
				a.log.Warn("call history", "error", err)
				return
			}
			a.broadcast(control.Event{Time: time.Now().UTC(), Kind: control.EventHistory, Account: e.Account})
		}()
		return
	}
	if ev.Call == nil {
		return
	}
	now := time.Now()
	a.times.mu.Lock()
	defer a.times.mu.Unlock()
	if a.times.m == nil {
		a.times.m = map[*sip.Call]callTime{}
	}
	ct := a.times.m[ev.Call]
	switch ev.Kind {
	case sip.EventIncoming, sip.EventMedia:
		if ct.start.IsZero() {
			ct.start = now
			a.times.m[ev.Call] = ct
		}
	case sip.EventCallStarted:
		if ct.start.IsZero() {
			ct.start = now
		}
		ct.answered = now
		a.times.m[ev.Call] = ct
	case sip.EventCallEnded:
		delete(a.times.m, ev.Call)
		if ct.start.IsZero() {
			ct.start = now
		}
		st := ev.Call.Status()
		e := history.Entry{Account: ev.Account, Direction: st.Direction, Peer: st.Peer, Start: ct.start.UTC(),
			Answered: !ct.answered.IsZero(), EndReason: st.EndReason}
		if e.Answered {
			e.Duration = now.Sub(ct.answered)
		}
		// Entries are written off the call path: a slow disk never delays
		// a hangup.
		go func() {
			if err := a.book.Add(e); err != nil {
				a.log.Warn("call history", "error", err)
				return
			}
			a.broadcast(control.Event{Time: time.Now().UTC(), Kind: control.EventHistory, Account: e.Account,
				CallID: ev.Call.ID(), Dialog: ev.Call.Dialog().String()})
		}()
	}
}
