package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hardphone/hardphone/agent/control"
	"github.com/hardphone/hardphone/agent/events"
	"github.com/hardphone/hardphone/agent/history"
	"github.com/hardphone/hardphone/agent/sip"
	"github.com/hardphone/hardphone/update"
)

// subscriberBuffer is how many events a CmdWatch client may fall behind
// before it loses some; a slow client never slows calls.
const subscriberBuffer = 64

// handle answers one control request.
func (a *Agent) handle(ctx context.Context, req *control.Request) (any, error) {
	// A question is not activity: PID 1 asks for both statuses every
	// health poll, and the pages answering runs stay mapped as they are
	// used (the releaser looks at faults too).
	if req.Command != control.CmdStatus && req.Command != control.CmdUpdateStatus {
		a.active()
	}
	switch req.Command {
	case control.CmdStatus:
		return a.Status(), nil
	case control.CmdUpdateStatus, control.CmdUpdateInstall, control.CmdUpdateMarkGood:
		return a.handleUpdate(ctx, req)
	case control.CmdCallAnswer, control.CmdCallHangup, control.CmdCallHold, control.CmdCallUnhold, control.CmdCallSwap,
		control.CmdCallMute, control.CmdCallUnmute:
		return a.handleCall(ctx, req)
	case control.CmdCallTransfer:
		return a.handleTransfer(ctx, req)
	case control.CmdCallDial:
		return a.handleDial(ctx, req)
	case control.CmdCallDTMF:
		return a.handleDTMF(req)
	case control.CmdHistory, control.CmdContacts, control.CmdContactsImport:
		return a.handleBook(req)
	case control.CmdEventsList, control.CmdEventsVerify:
		if a.journal == nil {
			return nil, fmt.Errorf("no security-event journal (no state file or no identity key): %w", control.ErrUnavailable)
		}
		if req.Command == control.CmdEventsVerify {
			return a.journal.Verify()
		}
		var from uint64
		var limit int
		if req.Events != nil {
			from, limit = req.Events.From, req.Events.Limit
		}
		return a.journal.List(from, limit)
	}
	return nil, &control.Error{Code: control.CodeUnknownCommand, Message: fmt.Sprintf("unknown command %q", req.Command)}
}

func (a *Agent) handleCall(ctx context.Context, req *control.Request) (any, error) {
	if req.Call == nil || req.Call.CallID == "" {
		return nil, fmt.Errorf("%s needs call.call_id: %w", req.Command, control.ErrBadRequest)
	}
	c, err := a.findCall(req.Call)
	if err != nil {
		return nil, err
	}
	switch req.Command {
	case control.CmdCallAnswer:
		// Call waiting: the call answered becomes the one talking.
		if c.Status().State == "ringing" {
			a.holdOthers(ctx, c)
		}
		err = c.Answer()
	case control.CmdCallSwap:
		a.holdOthers(ctx, c)
		if c.Status().Hold {
			err = c.Hold(ctx, false)
		}
	case control.CmdCallHangup:
		c.Hangup(ctx)
	case control.CmdCallHold:
		err = c.Hold(ctx, true)
	case control.CmdCallUnhold:
		err = c.Hold(ctx, false)
	case control.CmdCallMute:
		c.Media().Mute()
	case control.CmdCallUnmute:
		c.Media().Unmute()
	}
	if err != nil {
		return nil, err
	}
	return c.Status(), nil
}

// holdOthers puts every established call but keep, on every account, on
// hold: one call talks at a time. A hold the peer refuses leaves that call
// as it was (its failure is logged); the command goes on.
func (a *Agent) holdOthers(ctx context.Context, keep *sip.Call) {
	for _, acct := range a.accounts {
		for _, c := range acct.Calls() {
			if c == keep {
				continue
			}
			if st := c.Status(); st.State != "established" || st.Hold {
				continue
			}
			if err := c.Hold(ctx, true); err != nil {
				a.log.Warn("hold for call waiting", "call_id", c.ID(), "error", err)
			}
		}
	}
}

func (a *Agent) handleTransfer(ctx context.Context, req *control.Request) (any, error) {
	t := req.Transfer
	if req.Call == nil || req.Call.CallID == "" || t == nil || (t.Target == "") == (t.To == nil) {
		return nil, fmt.Errorf("call.transfer needs call.call_id and one of transfer.target and transfer.to: %w", control.ErrBadRequest)
	}
	if len(t.Target) > 256 {
		return nil, fmt.Errorf("transfer.target longer than 256 bytes: %w", control.ErrBadRequest)
	}
	c, err := a.findCall(req.Call)
	if err != nil {
		return nil, err
	}
	to := sip.TransferTarget{Target: t.Target}
	if t.To != nil {
		if t.To.Account == "" {
			t.To.Account = req.Call.Account
		}
		if to.Consult, err = a.findCall(t.To); err != nil {
			return nil, err
		}
	}
	if err := c.Transfer(ctx, to); err != nil {
		if errors.Is(err, sip.ErrDialRefused) {
			return nil, fmt.Errorf("%w: %w", control.ErrForbidden, err)
		}
		return nil, err
	}
	return c.Status(), nil
}

// handleUpdate runs updater commands for `hardphone update` while the
// agent runs: the agent owns the state file, so the command asks it.
// checkBundlePath refuses what update.install must not open: a relative
// path (whose directory?), and anything but a regular file (a FIFO or a
// device would hang or feed the updater forever).
func checkBundlePath(path string) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("bundle %q: want an absolute path on the phone: %w", path, control.ErrBadRequest)
	}
	if st, err := os.Stat(path); err != nil || !st.Mode().IsRegular() {
		return fmt.Errorf("bundle %q is not a regular file: %w", path, control.ErrBadRequest)
	}
	return nil
}

func (a *Agent) handleUpdate(ctx context.Context, req *control.Request) (any, error) {
	if a.updater == nil {
		return nil, fmt.Errorf("no updater configured ([update]): %w", control.ErrUnavailable)
	}
	switch req.Command {
	case control.CmdUpdateInstall:
		if req.Install == nil {
			return nil, fmt.Errorf("update.install needs install.bundle: %w", control.ErrBadRequest)
		}
		path := req.Install.Bundle
		if err := checkBundlePath(path); err != nil {
			return nil, err
		}
		st, err := a.updater.Install(ctx, path, update.InstallOptions{Force: req.Install.Force})
		if errors.Is(err, update.ErrRollback) {
			a.record(events.Event{Kind: events.KindRollbackAttempt, Detail: events.Detail{"bundle": filepath.Base(path), "reason": err.Error()}})
		}
		return st, err
	case control.CmdUpdateMarkGood:
		if err := a.updater.MarkGood(); err != nil {
			return nil, err
		}
	}
	return a.updater.Status()
}

// Status returns the agent-wide snapshot.
func (a *Agent) Status() control.Status {
	s := control.Status{Version: a.version, Credentials: "none", Weaker: true, Updater: a.updater != nil, Runtime: runtimeStatus()}
	s.Runtime.CodeRelease = a.codeStatus()
	if a.creds != nil {
		p := a.creds.Protection()
		s.Credentials, s.Weaker = p.String(), p.Weaker()
	}
	if a.lock != nil {
		s.Lockdown = &control.LockdownStatus{Policy: a.cfg.LockdownPolicy, DriftEvents: a.lock.DriftEvents()}
	}
	for _, acct := range a.accounts {
		s.Accounts = append(s.Accounts, acct.Status())
	}
	if a.prov != nil {
		f := &control.FleetStatus{}
		if ps, err := a.prov.Status(); err != nil {
			f.Detail = err.Error()
		} else {
			f.Enrolled, f.DeviceID, f.Serial, f.CertNotAfter, f.RenewAt = true, ps.DeviceID, ps.Serial, ps.NotAfter, ps.RenewAt
		}
		s.Fleet = f
	}
	if a.repos != nil {
		s.Provisioning = a.provisioningStatus()
	}
	return s
}

// subscribe starts a CmdWatch subscription.
func (a *Agent) subscribe() (<-chan control.Event, func()) {
	ch := make(chan control.Event, subscriberBuffer)
	a.mu.Lock()
	a.subs[ch] = struct{}{}
	a.mu.Unlock()
	return ch, func() {
		a.mu.Lock()
		delete(a.subs, ch)
		a.mu.Unlock()
	}
}

// publish hands an account event to every subscriber that has room.
// Security incidents are not: they go to the events journal, and a flood
// of them must not crowd call events out of a subscriber's buffer.
func (a *Agent) publish(ev sip.Event) {
	if ev.Kind == sip.EventSecurity {
		return
	}
	ce := control.Event{Time: time.Now().UTC(), Kind: ev.Kind, Account: ev.Account}
	if ev.Call != nil {
		cs := ev.Call.Status()
		ce.CallID, ce.Dialog, ce.Call = ev.Call.ID(), ev.Call.Dialog().String(), &cs
	}
	a.broadcast(ce)
}

// broadcast hands a watch event to every subscriber that has room.
func (a *Agent) broadcast(ce control.Event) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for ch := range a.subs {
		select {
		case ch <- ce:
		default:
		}
	}
}

// maxVCardFile bounds a contacts import.
const maxVCardFile = history.MaxVCardBytes

func (a *Agent) handleDial(ctx context.Context, req *control.Request) (any, error) {
	if req.Dial == nil || req.Dial.Target == "" {
		return nil, fmt.Errorf("call.dial needs dial.target: %w", control.ErrBadRequest)
	}
	acct, err := a.Account(req.Dial.Account)
	if err != nil {
		return nil, err
	}
	opts := sip.CallOptions{}
	var closeFn func() error
	if a.audio != nil {
		src, sink, cl, err := a.audio()
		if err != nil {
			a.log.Warn("sound device", "error", err)
		} else {
			opts, closeFn = sip.CallOptions{Source: src, Sink: sink}, cl
		}
	}
	c, err := acct.Dial(ctx, req.Dial.Target, opts)
	if closeFn != nil {
		if c == nil {
			if cerr := closeFn(); cerr != nil {
				a.log.Warn("close sound device", "error", cerr)
			}
		} else {
			go func() {
				<-c.Done()
				if err := closeFn(); err != nil {
					a.log.Warn("close sound device", "error", err)
				}
			}()
		}
	}
	if err != nil {
		return nil, err
	}
	return c.Status(), nil
}

// findCall resolves a request's call reference: by Call-ID, or by dialog
// where two dialogs share one Call-ID.
func (a *Agent) findCall(ref *control.CallRef) (*sip.Call, error) {
	acct, err := a.Account(ref.Account)
	if err != nil {
		return nil, err
	}
	c, err := acct.FindCall(ref.CallID, ref.Dialog)
	switch {
	case errors.Is(err, sip.ErrAmbiguousCall):
		return nil, fmt.Errorf("%w: %w", control.ErrBadRequest, err)
	case err != nil:
		return nil, fmt.Errorf("%w: %w", control.ErrNotFound, err)
	}
	return c, nil
}

func (a *Agent) handleDTMF(req *control.Request) (any, error) {
	if req.Call == nil || req.Call.CallID == "" || req.DTMF == "" || len(req.DTMF) > 64 {
		return nil, fmt.Errorf("call.dtmf needs call.call_id and 1-64 digits: %w", control.ErrBadRequest)
	}
	c, err := a.findCall(req.Call)
	if err != nil {
		return nil, err
	}
	for _, d := range req.DTMF {
		if err := c.Media().SendDTMF(d, 160*time.Millisecond); err != nil {
			return nil, fmt.Errorf("dtmf %q: %w", d, err)
		}
	}
	return c.Status(), nil
}

func (a *Agent) handleBook(req *control.Request) (any, error) {
	if a.book == nil {
		return nil, fmt.Errorf("no call history or contacts (they need a credential store to seal them): %w", control.ErrUnavailable)
	}
	switch req.Command {
	case control.CmdHistory:
		return a.book.List(req.Limit, req.Search)
	case control.CmdContacts:
		return a.book.Contacts(req.Search)
	}
	if req.Import == nil || !filepath.IsAbs(req.Import.Path) {
		return nil, fmt.Errorf("contacts.import needs import.path, absolute: %w", control.ErrBadRequest)
	}
	f, err := os.Open(req.Import.Path)
	if err != nil {
		return nil, fmt.Errorf("contacts: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() || st.Size() > maxVCardFile {
		return nil, fmt.Errorf("contacts: %s is not a regular file of at most %d bytes: %w", req.Import.Path, maxVCardFile, control.ErrBadRequest)
	}
	cs, err := history.ParseVCards(f)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", control.ErrBadRequest, err)
	}
	return a.book.AddContacts(cs)
}
