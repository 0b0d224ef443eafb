package sip

// Call transfer as the transferor (RFC 3515 REFER, RFC 5589 best
// practice): we ask the peer of one of our calls, the transferee, to call
// a target; blind (§6) with the target's URI, attended (§7) with our own
// established call to the target, whose dialog the transferee's INVITE
// takes over (Replaces, RFC 3891). The transferee reports progress in
// NOTIFYs of the implicit refer subscription (RFC 3515 §2.4.4); once it
// reports 2xx we end our call with it, and for an attended transfer our
// call with the target too if the target did not end it itself.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Transfer roles (TransferStatus.Role).
const (
	// TransferRoleTransferor: we asked the peer to call the target.
	TransferRoleTransferor = "transferor"
	// TransferRoleTransferee: the peer asked us to call the target.
	TransferRoleTransferee = "transferee"
)

// Transfer states (TransferStatus.State).
const (
	TransferTrying  = "trying"
	TransferRinging = "ringing"
	TransferDone    = "done"
	TransferFailed  = "failed"
)

// EventTransfer: a call's transfer moved on (Call.Status().Transfer says
// where to).
const EventTransfer EventKind = "transfer"

// ErrTransfer is wrapped by every refusal or failure of Call.Transfer.
var ErrTransfer = errors.New("transfer")

// transferTimeout bounds a transfer from REFER to the final NOTIFY (or, as
// the transferee, to the referred call's answer): the target rings for at
// most this long.
const transferTimeout = 2 * time.Minute

// byeGrace is how long the party that should end a transferred call is
// given before we end it ourselves: the transferor its call with the
// transferee (RFC 5589 §6.1), the target its replaced call (RFC 3891 §3).
const byeGrace = 3 * time.Second

// TransferStatus is a call's transfer as its status shows it.
type TransferStatus struct {
	Role     string `json:"role"`
	Target   string `json:"target"`
	Attended bool   `json:"attended,omitempty"`
	State    string `json:"state"`
	// Code and Reason are the last status reported (the target's answer
	// as the transferee's NOTIFY carried it, or the local refusal).
	Code   int    `json:"code,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// transfer is one transfer of a call, as either role. Its fields are
// guarded by the call's mu.
type transfer struct {
	TransferStatus
	// referCSeq is the CSeq of our REFER (transferor) or of theirs
	// (transferee): the refer event's id (RFC 3515 §2.4.6).
	referCSeq uint32
	// consult is our call with the target in an attended transfer
	// (transferor); nil for a blind one.
	consult *Call
	// heldHere: we put the call on hold for the transfer, so a failure
	// takes it off again.
	heldHere bool
	// final is closed when the transfer is done or failed.
	final chan struct{}
}

func (x *transfer) finished() bool {
	select {
	case <-x.final:
		return true
	default:
		return false
	}
}

// TransferTarget is where Call.Transfer sends a call: exactly one of
// Target (blind) and Consult (attended) is set.
type TransferTarget struct {
	// Target is a number, a user at the account's domain or a SIP URI, as
	// Dial takes it.
	Target string
	// Consult is our established call with the target, on the same
	// account: the transferee replaces it.
	Consult *Call
}

// Transfer asks the call's peer to call to (RFC 3515 REFER). It puts the
// call on hold first (RFC 5589 §6, §7: the transferee waits on hold) and
// returns once the peer accepted the REFER; progress arrives as
// EventTransfer. A blind target meets the account's dialling policy as a
// dialled number does: the transferee calls it on our behalf.
func (c *Call) Transfer(ctx context.Context, to TransferTarget) error {
	a := c.acct
	if (to.Target == "") == (to.Consult == nil) {
		return fmt.Errorf("%w: give a target or a consultation call, not both or neither", ErrTransfer)
	}
	if st := c.Status().State; st != "established" {
		return fmt.Errorf("%w: call is %s", ErrTransfer, st)
	}
	x := &transfer{final: make(chan struct{})}
	x.Role, x.State = TransferRoleTransferor, TransferTrying
	var referTo string
	if to.Consult != nil {
		cc := to.Consult
		if cc == c || cc.acct != a {
			return fmt.Errorf("%w: the consultation call must be another call of account %s", ErrTransfer, a.cfg.Name)
		}
		if st := cc.Status().State; st != "established" {
			return fmt.Errorf("%w: consultation call is %s", ErrTransfer, st)
		}
		var u sip.Uri
		if err := sip.ParseUri(cc.peer, &u); err != nil {
			return fmt.Errorf("%w: consultation peer %q: %v", ErrTransfer, cc.peer, err)
		}
		r := replacesFor(cc.dlg)
		referTo = referToValue(u, &r)
		x.Target, x.Attended, x.consult = cc.peer, true, cc
	}
	var blind sip.Uri
	if to.Target != "" {
		var err error
		if blind, err = a.targetURI(to.Target); err != nil {
			return fmt.Errorf("%w: %w", ErrTransfer, err)
		}
		referTo = referToValue(blind, nil)
		x.Target = blind.String()
	}
	c.mu.Lock()
	if c.xfer != nil && !c.xfer.finished() {
		c.mu.Unlock()
		return fmt.Errorf("%w: a transfer of this call is in progress", ErrTransfer)
	}
	c.xfer = x
	held := c.hold
	c.mu.Unlock()
	if to.Target != "" {
		// The toll-fraud guard: the transferee (often a PBX trunk) places
		// this call on our account's behalf, so it is checked and counted
		// as a dialled one.
		if err := a.dialAllowed(blind); err != nil {
			c.transferEnded(x, false, 403, err.Error())
			return fmt.Errorf("%w to %s: %w", ErrTransfer, to.Target, err)
		}
	}
	if !held {
		if err := c.Hold(ctx, true); err != nil {
			c.log.Warn("hold before transfer", "error", err)
		} else {
			c.mu.Lock()
			x.heldHere = true
			c.mu.Unlock()
		}
	}
	c.log.Info("transferring", "target", x.Target, "attended", x.Attended)
	a.events(Event{Account: a.cfg.Name, Kind: EventTransfer, Call: c})
	target, do, _ := c.dialogTarget()
	req := sip.NewRequest(sip.REFER, target)
	req.SetDestination(a.registrar.String())
	req.AppendHeader(sip.NewHeader("Refer-To", referTo))
	// RFC 3892: who asks; the transferee hands it on to the target.
	aor := a.aor()
	req.AppendHeader(sip.NewHeader("Referred-By", "<"+aor.String()+">"))
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := do(rctx, req)
	if err != nil {
		c.transferEnded(x, false, 0, err.Error())
		return fmt.Errorf("%w: refer: %w", ErrTransfer, err)
	}
	if !res.IsSuccess() {
		c.transferEnded(x, false, res.StatusCode, res.Reason)
		return fmt.Errorf("%w: %w", ErrTransfer, &ResponseError{"REFER", res.StatusCode, res.Reason})
	}
	c.mu.Lock()
	x.referCSeq = req.CSeq().SeqNo
	c.mu.Unlock()
	a.count(&a.counters.TransfersOut)
	go c.awaitTransfer(x)
	return nil
}

// awaitTransfer fails a transfer whose final NOTIFY does not come.
func (c *Call) awaitTransfer(x *transfer) {
	select {
	case <-x.final:
	case <-c.done:
		c.transferEnded(x, false, 0, "call ended")
	case <-c.acct.clock.After(transferTimeout):
		c.transferEnded(x, false, 408, "no final NOTIFY")
	}
}

// transferEnded records a transfer's outcome once; ok ends our call(s) as
// the transferor, a failure takes a blind transferee off the hold we put
// it on (RFC 5589 §6.2: the transferor retrieves the call).
func (c *Call) transferEnded(x *transfer, ok bool, code int, reason string) {
	c.mu.Lock()
	if x.finished() {
		c.mu.Unlock()
		return
	}
	x.State, x.Code, x.Reason = TransferFailed, code, short(reason)
	if ok {
		x.State = TransferDone
	}
	close(x.final)
	role, retrieve, consult := x.Role, !ok && x.heldHere && !x.Attended, x.consult
	c.mu.Unlock()
	c.log.Info("transfer ended", "role", role, "state", x.State, "code", code, "reason", reason)
	c.acct.events(Event{Account: c.acct.cfg.Name, Kind: EventTransfer, Call: c})
	if role != TransferRoleTransferor {
		return
	}
	ctx := context.Background()
	switch {
	case ok:
		// RFC 5589 §6.1: the transferor ends its call with the transferee.
		go c.hangup(ctx, "transferred")
		if consult != nil {
			// The target ends our consultation call when it honoured the
			// Replaces (RFC 3891 §3); a target that ignored it keeps it up.
			go func() {
				select {
				case <-consult.done:
				case <-c.acct.clock.After(byeGrace):
					consult.hangup(ctx, "transferred")
				}
			}()
		}
	case retrieve:
		go func() {
			if err := c.Hold(ctx, false); err != nil {
				c.log.Warn("retrieve after failed transfer", "error", err)
			}
		}()
	}
}

// onReferNotify takes the in-dialog NOTIFYs of our REFER's implicit
// subscription (RFC 3515 §2.4.4). A NOTIFY that names no dialog of ours is
// 481 like any in-dialog request; one for a dialog without a transfer of
// ours in progress, or for another event, is 481 too (RFC 6665 §4.1.3: no
// such subscription). Only an in-progress transferor's transfer changes.
func (a *Account) onReferNotify(req *sip.Request, tx sip.ServerTransaction) {
	c := a.dialogRequest(req, tx)
	if c == nil {
		return
	}
	id, hasID, ok := referEvent(req)
	c.mu.Lock()
	x := c.xfer
	// The first NOTIFY may overtake the REFER's 202 (RFC 3515 §2.4.4:
	// they travel separately); until the 202 is in, the one REFER this
	// call has outstanding is the only one it can be for.
	match := ok && x != nil && x.Role == TransferRoleTransferor && !x.finished() &&
		(x.referCSeq == 0 || !hasID || id == x.referCSeq)
	c.mu.Unlock()
	if !match {
		respond(a, tx, req, 481, "Subscription Does Not Exist", nil)
		return
	}
	ct := ""
	if h := req.ContentType(); h != nil {
		ct = h.Value()
	}
	code, reason, err := parseSipfrag(ct, req.Body())
	if err != nil {
		respond(a, tx, req, 400, "Bad Request", nil, warning(err.Error()))
		return
	}
	respond(a, tx, req, 200, "OK", nil)
	terminated := subscriptionTerminated(req)
	switch {
	case code >= 200 && code < 300:
		c.transferEnded(x, true, code, reason)
	case code >= 300:
		c.transferEnded(x, false, code, reason)
	case terminated:
		c.transferEnded(x, false, code, "subscription ended before a final status")
	default:
		c.mu.Lock()
		x.Code, x.Reason = code, reason
		if code == 180 || code == 183 {
			x.State = TransferRinging
		}
		c.mu.Unlock()
		a.events(Event{Account: a.cfg.Name, Kind: EventTransfer, Call: c})
	}
}

// dialogTarget returns where in-dialog requests of the call go (the peer's
// Contact, RFC 3261 §12.2.1.1) and how to send them.
func (c *Call) dialogTarget() (sip.Uri, func(context.Context, *sip.Request) (*sip.Response, error), func(*sip.Request) error) {
	c.mu.Lock()
	cli, srv := c.cli, c.srv
	c.mu.Unlock()
	if cli != nil {
		target := cli.InviteRequest.Recipient
		if ct := cli.InviteResponse.Contact(); ct != nil {
			target = ct.Address
		}
		return target, cli.Do, cli.WriteRequest
	}
	target := srv.InviteRequest.From().Address
	if ct := srv.InviteRequest.Contact(); ct != nil {
		target = ct.Address
	}
	return target, srv.Do, srv.WriteRequest
}

// transferStatus snapshots the call's transfer; nil for none. c.mu held.
func (c *Call) transferStatus() *TransferStatus {
	if c.xfer == nil {
		return nil
	}
	st := c.xfer.TransferStatus
	return &st
}

// statusOf turns why a referred call failed into the status line its final
// NOTIFY carries (RFC 3515 §2.4.5): the target's answer when there was
// one, else the nearest status for a local refusal.
func statusOf(err error) (int, string) {
	var re *ResponseError
	switch {
	case errors.As(err, &re):
		return re.Code, re.Reason
	case errors.Is(err, ErrDialRefused), errors.Is(err, ErrChallengeRefused):
		return 403, "Forbidden"
	case errors.Is(err, ErrCallLimit):
		return 486, "Busy Here"
	case errors.Is(err, ErrInsecureMedia):
		return 488, "Not Acceptable Here"
	case errors.Is(err, ErrNotRegistered):
		return 503, "Service Unavailable"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return 408, "Request Timeout"
	}
	return 500, "Server Internal Error"
}
