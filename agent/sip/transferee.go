package sip

// Call transfer as the transferee: the peer of one of our calls sends a
// REFER (RFC 3515) asking us to call a target. A REFER is someone else
// making this phone place a call, so it is refused unless every one of
// these holds, checked in this order before anything is sent:
//   - the account allows transfers (allow_refer, off by default);
//   - it arrived over the registrar's TLS flow, inside an established
//     dialog of ours matched on Call-ID and both tags (RFC 3261 §12.2.2),
//     whose own signalling runs over that flow; never outside a dialog;
//   - its one Refer-To (RFC 3515 §2.4.1) passes parseReferTo (a sip: URI
//     at the account's domain, only a Replaces embedded) and names neither
//     this phone nor, through Replaces, one of its own calls;
//   - it is within the account's REFER rate and no other transfer of that
//     call is in progress.
// The call it asks for then goes through Dial's path: the call caps and
// the dialling policy (the toll-fraud guard) like a number typed on the
// phone, so a REFER to a premium-rate number fails exactly as dialling it
// would. Progress goes back in NOTIFYs (RFC 3515 §2.4.4, §2.4.5).

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
	"golang.org/x/time/rate"
)

// REFERs an account accepts: a burst of referBurst, then one every
// referEvery. A person transfers a few calls an hour; a flood is answered
// 503 and counted.
const (
	referBurst = 3
	referEvery = 10 * time.Second
)

// referSubscriptionExpires is the Expires of the implicit subscription our
// NOTIFYs announce while active (RFC 6665 §4.2.2).
const referSubscriptionExpires = int(transferTimeout / time.Second)

func newReferLimiter() *rate.Limiter { return rate.NewLimiter(rate.Every(referEvery), referBurst) }

// referRefused answers a REFER refused by policy, counts it and reports it
// as a security incident.
func (a *Account) referRefused(req *sip.Request, tx sip.ServerTransaction, code int, reason string, why error, hdrs ...sip.Header) {
	if a.count(&a.counters.REFERRefused) {
		a.log.Warn("REFER refused", "call_id", callID(req), "code", code, "why", why.Error())
	}
	a.requestIncident(IncidentREFERRefused, req, why.Error())
	respond(a, tx, req, code, reason, nil, append(hdrs, warning(why.Error()))...)
}

func (a *Account) onRefer(req *sip.Request, tx sip.ServerTransaction) {
	if _, ok := requestDialog(req); !ok {
		a.referRefused(req, tx, 403, "Forbidden", errors.New("REFER outside a dialog"))
		return
	}
	c := a.dialogRequest(req, tx)
	if c == nil {
		return
	}
	if !a.cfg.AllowRefer {
		a.referRefused(req, tx, 403, "Forbidden", errTransferPolicy)
		return
	}
	c.mu.Lock()
	state := c.state
	c.mu.Unlock()
	switch {
	case !c.tlsHop || !strings.EqualFold(req.Transport(), "TLS"):
		a.referRefused(req, tx, 403, "Forbidden", errTransferFlow)
		return
	case state != "established":
		a.referRefused(req, tx, 403, "Forbidden", fmt.Errorf("REFER on a call that is %s", state))
		return
	}
	// RFC 3515 §2.4.1: "An agent responding to a REFER method MUST return a
	// 400 (Bad Request) if the request contained zero or more than one
	// Refer-To header field values."
	vs := headerValues(req, "Refer-To", "r")
	if len(vs) != 1 {
		respond(a, tx, req, 400, "Bad Request", nil, warning(fmt.Sprintf("%d Refer-To values, want exactly one", len(vs))))
		return
	}
	t, err := parseReferTo(vs[0], a.cfg.Domain, a.registrarHost())
	if errors.Is(err, errReferSyntax) || errors.Is(err, errReplacesSyntax) {
		respond(a, tx, req, 400, "Bad Request", nil, warning(err.Error()))
		return
	}
	if err == nil && aorKey(t.URI) == aorKey(a.aor()) {
		err = fmt.Errorf("%w: it names this phone", errReferTarget)
	}
	if err == nil && t.Replaces != nil && a.callByDialog(t.Replaces.dialog()) != nil {
		// A Replaces for one of our own dialogs would have us take over
		// our own call through the proxy: a hijack by loopback.
		err = fmt.Errorf("%w: its Replaces names a call of this phone", errReferTarget)
	}
	if err != nil {
		a.referRefused(req, tx, 403, "Forbidden", err)
		return
	}
	// The rate counts every REFER that would place a call: a flood of
	// them is refused before it places a single one.
	if !a.referLimit.AllowN(a.clock.Now(), 1) {
		a.referRefused(req, tx, 503, "Service Unavailable", errors.New("REFERs above the account's rate"),
			sip.NewHeader("Retry-After", strconv.Itoa(int(referEvery/time.Second))))
		return
	}
	var by sip.Header
	if u, err := referredBy(req); err == nil && validUser(u.User) && len(u.Host) <= 255 {
		by = sip.NewHeader("Referred-By", "<"+(&sip.Uri{Scheme: u.Scheme, User: u.User, Host: u.Host}).String()+">")
	}
	x := &transfer{referCSeq: req.CSeq().SeqNo, final: make(chan struct{})}
	x.Role, x.State, x.Target, x.Attended = TransferRoleTransferee, TransferTrying, t.URI.String(), t.Replaces != nil
	c.mu.Lock()
	if c.xfer != nil && !c.xfer.finished() {
		c.mu.Unlock()
		a.referRefused(req, tx, 403, "Forbidden", errors.New("a transfer of this call is in progress"))
		return
	}
	c.xfer = x
	c.mu.Unlock()
	ct := a.dialogContact()
	// RFC 3515 §2.4.2: a UA that accepts the REFER answers 202 Accepted.
	respond(a, tx, req, 202, "Accepted", nil, &ct)
	a.count(&a.counters.TransfersIn)
	c.log.Info("transfer requested", "target", x.Target, "attended", x.Attended)
	a.events(Event{Account: a.cfg.Name, Kind: EventTransfer, Call: c})
	go c.follow(x, t, by)
}

// follow places the referred call and reports it to the transferor.
func (c *Call) follow(x *transfer, t referTarget, by sip.Header) {
	a := c.acct
	// RFC 3515 §2.4.4: the subscription's first NOTIFY goes at once.
	var live atomic.Bool
	live.Store(c.notifyRefer(x.referCSeq, 100, "Trying", false))
	c.mu.Lock()
	held := c.hold
	c.mu.Unlock()
	if !held {
		// The transferor normally holds us first (RFC 5589 §6); if it did
		// not, our microphone must not go on to it while we call the
		// target.
		if err := c.Hold(context.Background(), true); err != nil {
			c.log.Warn("hold before following a transfer", "error", err)
		} else {
			c.mu.Lock()
			x.heldHere = true
			c.mu.Unlock()
		}
	}
	// Provisional NOTIFYs go out in order off the INVITE's response loop;
	// they are best effort, so a full queue drops one.
	type status struct {
		code   int
		reason string
	}
	progress := make(chan status, 4)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for p := range progress {
			if live.Load() {
				live.Store(c.notifyRefer(x.referCSeq, p.code, p.reason, false))
			}
		}
	}()
	extra := dialExtras{audio: true, progress: func(code int, reason string) {
		if code <= 100 {
			return
		}
		c.mu.Lock()
		x.Code, x.Reason = code, short(reason)
		if code == 180 || code == 183 {
			x.State = TransferRinging
		}
		c.mu.Unlock()
		a.events(Event{Account: a.cfg.Name, Kind: EventTransfer, Call: c})
		select {
		case progress <- status{code, reason}:
		default:
		}
	}}
	if t.Replaces != nil {
		extra.headers = append(extra.headers, sip.NewHeader("Replaces", t.Replaces.String()))
	}
	if by != nil {
		// RFC 3892: the referred request carries the Referred-By.
		extra.headers = append(extra.headers, by)
	}
	ctx, cancel := context.WithTimeout(a.lifetime(), transferTimeout)
	defer cancel()
	nc, err := a.dial(ctx, t.URI, CallOptions{}, extra)
	close(progress)
	<-drained
	// The outcome is recorded before the final NOTIFY goes: a transferor
	// told of it may send its next REFER at once.
	if err != nil {
		code, reason := statusOf(err)
		c.log.Warn("referred call failed", "target", x.Target, "error", err)
		c.mu.Lock()
		retrieve := x.heldHere
		c.mu.Unlock()
		c.transferEnded(x, false, code, reason)
		if live.Load() {
			c.notifyRefer(x.referCSeq, code, reason, true)
		}
		if retrieve {
			if err := c.Hold(context.Background(), false); err != nil {
				c.log.Warn("retrieve after a failed transfer", "error", err)
			}
		}
		return
	}
	c.log.Info("referred call established", "target", x.Target, "new_call", nc.dlg.String())
	c.transferEnded(x, true, 200, "OK")
	if live.Load() {
		c.notifyRefer(x.referCSeq, 200, "OK", true)
	}
	// RFC 5589 §6.1: the transferor ends this call once told; if it does
	// not, we do.
	select {
	case <-c.done:
	case <-a.clock.After(byeGrace):
		c.hangup(context.Background(), "transferred")
	}
}

// notifyRefer sends one NOTIFY of the implicit refer subscription (RFC 3515
// §2.4.4-§2.4.6) and reports whether the subscription is still worth
// notifying: a transferor that answers 481 (or has gone) wants no more.
func (c *Call) notifyRefer(id uint32, code int, reason string, final bool) bool {
	target, do, _ := c.dialogTarget()
	req := sip.NewRequest(sip.NOTIFY, target)
	req.SetDestination(c.acct.registrar.String())
	req.AppendHeader(sip.NewHeader("Event", "refer;id="+strconv.FormatUint(uint64(id), 10)))
	state := "active;expires=" + strconv.Itoa(referSubscriptionExpires)
	if final {
		state = "terminated;reason=noresource"
	}
	req.AppendHeader(sip.NewHeader("Subscription-State", state))
	req.AppendHeader(sip.NewHeader("Content-Type", sipfragContentType))
	req.SetBody(sipfrag(code, reason))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := do(ctx, req)
	if err != nil {
		c.log.Debug("refer notify", "error", err)
		return false
	}
	if !res.IsSuccess() {
		c.log.Debug("refer notify refused", "code", res.StatusCode)
		return false
	}
	return true
}

// registrarHost is the host part of the account's registrar setting.
func (a *Account) registrarHost() string {
	host, _, err := net.SplitHostPort(a.cfg.Registrar)
	if err != nil {
		return ""
	}
	return host
}
