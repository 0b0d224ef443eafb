package sip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/hardphone/hardphone/agent/config"
	"github.com/hardphone/hardphone/agent/media"
)

// Inbound is what the agent does with an inbound call: where its audio comes
// from and goes to.
type Inbound func(c *Call) CallOptions

// SetInbound sets the audio ends for inbound calls.
func (a *Account) SetInbound(f Inbound) {
	a.mu.Lock()
	a.inbound = f
	a.mu.Unlock()
}

func (a *Account) routeRequests() {
	a.srv.OnInvite(a.guard(a.onInvite))
	a.srv.OnAck(a.guard(a.onAck))
	a.srv.OnBye(a.guard(a.onBye))
	a.srv.OnCancel(a.guard(a.onCancel))
	a.srv.OnOptions(a.guard(func(req *sip.Request, tx sip.ServerTransaction) {
		if !a.dialogOK(req, tx) {
			return
		}
		respond(a, tx, req, 200, "OK", nil, sip.NewHeader("Allow", allowMethods))
	}))
	a.srv.OnRefer(a.guard(a.onRefer))
	a.srv.OnNotify(a.guard(a.onNotify))
	a.srv.OnNoRoute(a.guard(func(req *sip.Request, tx sip.ServerTransaction) {
		if req.IsAck() || !a.dialogOK(req, tx) {
			return
		}
		respond(a, tx, req, 405, "Method Not Allowed", nil, sip.NewHeader("Allow", allowMethods))
	}))
}

func warning(text string) sip.Header {
	// RFC 3261 §20.43: warn-text is a quoted-string.
	return sip.NewHeader("Warning", `399 hardphone "`+strings.ReplaceAll(text, `"`, `'`)+`"`)
}

// count adds one to a counter under a.mu and says whether to log it: the
// first ten, then every hundredth, so a flood does not flood the log.
func (a *Account) count(c *int) bool {
	a.mu.Lock()
	*c++
	n := *c
	a.mu.Unlock()
	return n <= 10 || n%100 == 0
}

func (a *Account) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	a.invites.remember(req, a.clock.Now())
	if _, ok := requestDialog(req); ok {
		a.onReInvite(req, tx)
		return
	}
	from := req.From()
	if from == nil {
		respond(a, tx, req, 400, "Bad Request (From)", nil)
		return
	}
	// Rate limit first: everything below costs more than this.
	src := inviteSource(req.Transport(), req.Source(), from.Address.User, from.Address.Host)
	if !a.limiter.allow(src, a.clock.Now()) {
		if a.count(&a.counters.INVITEFlood) {
			a.log.Warn("INVITE rate-limited", "source", src, "call_id", callID(req), "invite_flood", a.Status().Counters.INVITEFlood)
		}
		a.requestIncident(IncidentINVITEFlood, req, "above the per-source INVITE rate")
		respond(a, tx, req, 503, "Service Unavailable", nil,
			sip.NewHeader("Retry-After", strconv.Itoa(int(inviteEvery/time.Second))), warning("too many INVITEs from "+src))
		return
	}
	id, ftag := callID(req), fromTag(req)
	// RFC 3261 §8.2.2.2: a request without To tag whose Call-ID and From tag
	// are those of a pending INVITE, on another branch (the same branch is
	// a retransmission the transaction layer absorbed), is a merged request.
	if a.pendingInvite(id, ftag) {
		a.count(&a.counters.MergedRequests)
		a.log.Warn("merged INVITE refused", "call_id", id)
		respond(a, tx, req, 482, "Loop Detected", nil)
		return
	}
	ct := req.ContentType()
	if len(req.Body()) == 0 || ct == nil || !strings.EqualFold(strings.TrimSpace(ct.Value()), "application/sdp") {
		// We need the offer in the INVITE to decide on SRTP before ringing.
		respond(a, tx, req, 488, "Not Acceptable Here", nil, warning("offer required in INVITE"))
		return
	}
	// RFC 3891: an INVITE that takes over one of our calls.
	replaced, code, why := a.replacedCall(req)
	if code != 0 {
		if a.count(&a.counters.ReplacesRefused) {
			a.log.Warn("INVITE with Replaces refused", "call_id", id, "code", code, "why", why.Error())
		}
		a.requestIncident(IncidentREFERRefused, req, "Replaces: "+why.Error())
		respond(a, tx, req, code, reasonPhrase(code), nil, warning(why.Error()))
		return
	}
	kept := false
	if replaced != nil {
		defer func() {
			if !kept {
				replaced.releaseReplace()
			}
		}()
	}
	// Call waiting: is another call up on the phone (any account)?
	busy := a.global.inUse() > 0
	if busy && replaced == nil && a.cfg.CallWaiting == config.CallWaitingBusy {
		respond(a, tx, req, 486, "Busy Here", nil, warning("another call is up (call_waiting = busy)"))
		return
	}
	// Admission before a single port is bound.
	release, ok := a.admit()
	if !ok {
		if a.count(&a.counters.CallCap) {
			a.log.Warn("inbound call refused at the call cap", "call_id", id, "max_calls", a.cfg.MaxCalls)
		}
		a.requestIncident(IncidentCallCap, req, "inbound call at the call cap")
		respond(a, tx, req, 486, "Busy Here", nil, warning("call limit reached"))
		return
	}
	start := a.clock.Now()
	tlsHop := strings.EqualFold(req.Transport(), "TLS")
	ms, err := media.NewSession(a.mediaConfig(tlsHop))
	if errors.Is(err, media.ErrNotAcceptable) {
		// SDES or DTLS-SRTP over a plain hop: keys in clear, or a
		// fingerprint that authenticates whoever sent it.
		release()
		a.countMediaRefusal(err)
		a.log.Warn("inbound call refused by media policy", "error", err, "call_id", id)
		respond(a, tx, req, 488, "Not Acceptable Here", nil, warning(err.Error()))
		return
	}
	if err != nil {
		release()
		a.log.Error("media session", "error", err)
		respond(a, tx, req, 500, "Server Internal Error", nil)
		return
	}
	answer, err := ms.Answer(req.Body())
	if err != nil {
		ms.Close()
		release()
		a.countMediaRefusal(err)
		a.log.Warn("inbound offer refused by media policy", "error", err, "call_id", id)
		respond(a, tx, req, 488, "Not Acceptable Here", nil, warning(err.Error()))
		return
	}
	dua := &sipgo.DialogUA{Client: a.cli, ContactHDR: a.dialogContact()}
	dlg, err := dua.ReadInvite(req, tx)
	if err != nil {
		ms.Close()
		release()
		respond(a, tx, req, 400, "Bad Request", nil, warning(err.Error()))
		return
	}
	local, _ := dlg.InviteRequest.To().Params.Get("tag")
	branch := ""
	if v := req.Via(); v != nil {
		branch, _ = v.Params.Get("branch")
	}
	seq := req.CSeq().SeqNo
	c := &Call{acct: a, id: id, dlg: DialogID{CallID: id, LocalTag: local, RemoteTag: ftag}, dir: "in",
		peer: from.Address.String(), peerAOR: aorKey(from.Address), waiting: busy && replaced == nil, replaces: replaced,
		media: ms, started: start, done: make(chan struct{}), release: release, tlsHop: tlsHop, branch: branch, srv: dlg, state: "ringing", answerCh: make(chan struct{}),
		remoteCSeq: seq, remoteSet: true, ackCSeq: seq}
	c.log = a.log.With("call_id", c.id, "dialog", c.dlg.String(), "peer", c.peer)
	a.addCall(c)
	// From here every path ends the call (end releases its slot, ports and
	// whatever the agent attached), so the agent's audio ends come now.
	a.mu.Lock()
	in := a.inbound
	a.counters.CallsIn++
	a.mu.Unlock()
	if in != nil {
		o := in(c)
		ms.SetSource(o.Source)
		ms.SetSink(o.Sink)
	}
	a.events(Event{Account: a.cfg.Name, Kind: EventIncoming, Call: c})
	a.events(Event{Account: a.cfg.Name, Kind: EventMedia, Call: c})
	if err := dlg.Respond(180, "Ringing", nil); err != nil {
		c.log.Warn("ringing", "error", err)
	}
	// A call that came over a plain listener is never answered by itself:
	// its source is one spoofed datagram away. (No keying is allowed over
	// a plain hop today, so such a call is refused above; this stays
	// should that change.)
	//
	// During another call, an auto-answering account rings instead (call
	// waiting) unless it takes calls in parallel. A call that replaces
	// one of ours (RFC 3891 §3) takes over a call already accepted: it is
	// answered at once.
	auto := a.cfg.Answer == config.AnswerAuto && tlsHop && !(busy && a.cfg.CallWaiting == config.CallWaitingRing)
	if auto || replaced != nil {
		if err := c.Answer(); err != nil {
			c.log.Warn("auto answer", "error", err)
		}
	}
	// sipgo ends the INVITE transaction when the handler returns, so the
	// handler rings until the call is answered, cancelled or times out.
	if c.answerWhenReady(answer) {
		if replaced != nil {
			// RFC 3891 §3: accept the new INVITE, then shut the replaced
			// dialog down with a BYE.
			kept = true
			a.count(&a.counters.CallsReplaced)
			c.log.Info("call replaces another", "replaced", replaced.dlg.String())
			go replaced.hangup(context.Background(), "replaced")
		}
		go c.startMedia()
	}
}

// pendingInvite reports whether an inbound INVITE with this Call-ID and From
// tag is still waiting for its final answer or its ACK.
func (a *Account) pendingInvite(id, ftag string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for d, c := range a.calls {
		if d.CallID == id && d.RemoteTag == ftag && c.dir == "in" {
			c.mu.Lock()
			pending := c.state == "ringing" || c.state == "answered"
			c.mu.Unlock()
			if pending {
				return true
			}
		}
	}
	return false
}

// ringTimeout bounds how long an unanswered call rings.
const ringTimeout = 120 * time.Second

// answerWhenReady rings until the call is answered and sends the 200 OK;
// false when the call ended first.
func (c *Call) answerWhenReady(answer []byte) bool {
	c.mu.Lock()
	ch, srv := c.answerCh, c.srv
	c.mu.Unlock()
	if ch != nil {
		select {
		case <-ch:
		case <-c.done:
			return false
		case <-srv.Context().Done():
			// The INVITE transaction was cancelled (a CANCEL that matched it,
			// RFC 3261 §9.2: the transaction layer answered 200 and 487).
			c.end("cancelled")
			return false
		case <-c.acct.clock.After(ringTimeout):
			c.hangup(context.Background(), "not answered")
			return false
		}
	}
	if d := c.acct.cfg.AnswerDelay; d > 0 && c.replaces == nil {
		select {
		case <-c.acct.clock.After(d):
		case <-c.done:
			return false
		}
	}
	c.mu.Lock()
	if c.state != "ringing" {
		c.mu.Unlock()
		return false
	}
	c.state = "answered"
	c.mu.Unlock()
	if err := srv.RespondSDP(answer); err != nil {
		c.log.Warn("200 OK", "error", err)
		c.end("answer failed: " + err.Error())
		return false
	}
	// RespondSDP returns once its ACK came, or after 64*T1 without one
	// (RFC 3261 §13.3.1.4: "the dialog is confirmed, but the session SHOULD
	// be terminated"). Only an ACK of this dialog counts (onAck).
	c.mu.Lock()
	acked := c.acked
	c.mu.Unlock()
	if !acked {
		c.hangup(context.Background(), "no ACK for our 200 OK")
		return false
	}
	return true
}

// startMedia keys SRTP after our 200 OK. DTLS: we answered a=setup:active
// and start the handshake now; SDES keys are already agreed. Either way no
// RTP flows before Start succeeds.
func (c *Call) startMedia() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() {
		select {
		case <-c.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := c.media.Start(ctx); err != nil {
		c.acct.countMediaRefusal(err)
		c.log.Warn("media refused", "error", err)
		c.hangup(context.Background(), "media: "+err.Error())
		return
	}
	now := c.acct.clock.Now()
	c.mu.Lock()
	if c.state == "answered" {
		c.state, c.established, c.setup = "established", now, now.Sub(c.started)
	}
	c.mu.Unlock()
	c.log.Info("call established", "direction", "in", "srtp", c.media.Stats().Suite)
	c.acct.events(Event{Account: c.acct.cfg.Name, Kind: EventCallStarted, Call: c})
	c.watchMedia()
}

func callID(req *sip.Request) string {
	if h := req.CallID(); h != nil {
		return h.Value()
	}
	return ""
}

// dialogRequest finds the call an in-dialog request names (RFC 3261 §12.2.2:
// Call-ID, To tag ours, From tag theirs) and applies the CSeq order. A
// request that names no dialog of ours is answered 481 (an ACK is dropped),
// one out of order 500; both are counted and change nothing. For an
// in-order request the dialog's remote CSeq becomes the request's.
func (a *Account) dialogRequest(req *sip.Request, tx sip.ServerTransaction) *Call {
	id, ok := requestDialog(req)
	var c *Call
	if ok {
		c = a.callByDialog(id)
	}
	if c == nil && req.IsAck() && a.invites.ackOfRefusal(req, a.clock.Now()) {
		a.log.Debug("ACK of a refused INVITE absorbed", "call_id", callID(req))
		return nil
	}
	if c == nil {
		if a.count(&a.counters.ForeignDialog) {
			a.log.Warn("request for a dialog that is not ours", "method", string(req.Method),
				"call_id", callID(req), "dialog", id.String(), "foreign_dialog", a.Status().Counters.ForeignDialog)
		}
		a.requestIncident(IncidentForeignDialog, req, "no dialog of ours")
		if !req.IsAck() {
			respond(a, tx, req, 481, "Call/Transaction Does Not Exist", nil)
		}
		return nil
	}
	if req.IsAck() {
		return c
	}
	seq := req.CSeq().SeqNo
	c.mu.Lock()
	if !inOrder(c.remoteCSeq, c.remoteSet, seq) {
		remote := c.remoteCSeq
		c.mu.Unlock()
		if a.count(&a.counters.CSeqOutOfOrder) {
			c.log.Warn("in-dialog request out of CSeq order", "method", string(req.Method), "cseq", seq, "remote_cseq", remote)
		}
		respond(a, tx, req, 500, "Server Internal Error", nil, warning("CSeq out of order"))
		return nil
	}
	c.remoteCSeq, c.remoteSet = seq, true
	c.mu.Unlock()
	return c
}

// dialogOK applies dialogRequest to a request that may be in a dialog (it
// has a To tag); one outside any dialog passes. false means answered.
func (a *Account) dialogOK(req *sip.Request, tx sip.ServerTransaction) bool {
	if _, ok := requestDialog(req); !ok {
		return true
	}
	return a.dialogRequest(req, tx) != nil
}

func (a *Account) onReInvite(req *sip.Request, tx sip.ServerTransaction) {
	c := a.dialogRequest(req, tx)
	if c == nil {
		return
	}
	c.mu.Lock()
	state := c.state
	c.mu.Unlock()
	if state != "established" {
		// RFC 3261 §14.2: an INVITE before the final response (and, here,
		// before the media of the first is up) is answered 500 with a
		// Retry-After.
		respond(a, tx, req, 500, "Server Internal Error", nil, sip.NewHeader("Retry-After", "2"), warning("call is "+state))
		return
	}
	if len(req.Body()) == 0 {
		respond(a, tx, req, 488, "Not Acceptable Here", nil, warning("offer required in re-INVITE"))
		return
	}
	answer, err := c.media.AnswerReoffer(req.Body())
	if err != nil {
		// The call keeps its current, secure media (RFC 3264 §8: a refused
		// re-offer leaves the session as it was).
		c.acct.countMediaRefusal(err)
		c.log.Warn("re-offer refused by media policy", "error", err)
		respond(a, tx, req, 488, "Not Acceptable Here", nil, warning(err.Error()))
		return
	}
	c.mu.Lock()
	c.hold = c.media.Stats().Direction != "sendrecv"
	c.ackCSeq = req.CSeq().SeqNo
	c.mu.Unlock()
	a.events(Event{Account: a.cfg.Name, Kind: EventMedia, Call: c})
	ct := a.dialogContact()
	respond(a, tx, req, 200, "OK", answer, sip.NewHeader("Content-Type", "application/sdp"), &ct)
}

// onAck takes the ACK of a 2xx (RFC 3261 §13.3.1.4, §17.1.1.3: a request of
// its own, matched here by dialog and by the CSeq of the INVITE it
// acknowledges). Anything else is dropped: a blind ACK confirms nothing.
func (a *Account) onAck(req *sip.Request, tx sip.ServerTransaction) {
	c := a.dialogRequest(req, tx)
	if c == nil {
		return
	}
	c.mu.Lock()
	if c.ackCSeq == 0 || req.CSeq().SeqNo != c.ackCSeq {
		want := c.ackCSeq
		c.mu.Unlock()
		c.log.Debug("ACK for no pending 2xx dropped", "cseq", req.CSeq().SeqNo, "want", want)
		return
	}
	initial := !c.acked
	c.acked, c.ackCSeq = true, 0
	srv := c.srv
	c.mu.Unlock()
	if initial && srv != nil {
		if err := srv.ReadAck(req, tx); err != nil && !errors.Is(err, sipgo.ErrDialogInvalidCseq) {
			c.log.Debug("ack", "error", err)
		}
	}
}

func (a *Account) onBye(req *sip.Request, tx sip.ServerTransaction) {
	c := a.dialogRequest(req, tx)
	if c == nil {
		return
	}
	c.mu.Lock()
	srv, ringing := c.srv, c.state == "ringing"
	c.mu.Unlock()
	if ringing && srv != nil {
		// RFC 3261 §15.1.2: a BYE in an early dialog; the INVITE gets 487.
		if err := srv.Respond(487, "Request Terminated", nil); err != nil {
			c.log.Debug("487", "error", err)
		}
	}
	// The call ends (media closed, its ports and call slot released)
	// before the 200: a peer that calls again at once finds the slot
	// free, and a 200 means the call is gone, not going.
	c.end("remote hangup")
	respond(a, tx, req, 200, "OK", nil)
}

// onCancel sees only CANCELs the transaction layer matched to no pending
// INVITE server transaction (RFC 3261 §9.2, matching by §17.2.3: branch,
// sent-by and method; those it matched it answered 200 and 487 itself, and
// the ringing call ended through its dialog). §9.2: "If the UAS did not
// find a matching transaction for the CANCEL ... it SHOULD respond to the
// CANCEL with a 481". A CANCEL never ends an established call.
func (a *Account) onCancel(req *sip.Request, tx sip.ServerTransaction) {
	if a.count(&a.counters.ForeignDialog) {
		a.log.Warn("CANCEL matches no pending INVITE", "call_id", callID(req))
	}
	a.requestIncident(IncidentForeignDialog, req, "CANCEL matches no pending INVITE")
	respond(a, tx, req, 481, "Call/Transaction Does Not Exist", nil)
}

// FindCall returns a live call by Call-ID, or by dialog (the DialogID
// String form) when dialog is not empty. A Call-ID that two dialogs share
// is ambiguous: the caller must name the dialog.
func (a *Account) FindCall(id, dialog string) (*Call, error) {
	if dialog != "" {
		d, err := ParseDialogID(dialog)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrAmbiguousCall, err)
		}
		if id != "" && d.CallID != id {
			return nil, fmt.Errorf("%w: dialog %q is not of call_id %q", ErrAmbiguousCall, dialog, id)
		}
		if c := a.callByDialog(d); c != nil {
			return c, nil
		}
		return nil, fmt.Errorf("no call with dialog %q on account %s: %w", dialog, a.cfg.Name, ErrNoCall)
	}
	var found []*Call
	for _, c := range a.Calls() {
		if c.id == id {
			found = append(found, c)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no call %q on account %s: %w", id, a.cfg.Name, ErrNoCall)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("%w: call_id %q names %d dialogs on account %s; give the dialog", ErrAmbiguousCall, id, len(found), a.cfg.Name)
}

// Listen serves plain SIP on network ("udp" or "tcp") at addr until ctx
// ends, on a socket made by lc (the lockdown policy's, which refuses ports
// the policy does not list and turns multipath TCP off).
func (a *Account) Listen(ctx context.Context, lc *net.ListenConfig, network, addr string) error {
	switch network {
	case "udp":
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			return fmt.Errorf("listen udp %s: %w", addr, err)
		}
		go func() { <-ctx.Done(); pc.Close() }()
		go func() {
			// Foreign datagrams are refused as they are read (plainguard.go).
			if err := a.srv.ServeUDP(plainUDP{PacketConn: pc, a: a}); err != nil && ctx.Err() == nil {
				a.log.Warn("udp listener", "error", err)
			}
		}()
	case "tcp":
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("listen tcp %s: %w", addr, err)
		}
		go func() { <-ctx.Done(); ln.Close() }()
		go func() {
			if err := a.srv.ServeTCP(ln); err != nil && ctx.Err() == nil {
				a.log.Warn("tcp listener", "error", err)
			}
		}()
	default:
		return fmt.Errorf("listen %s %s: network must be udp or tcp", network, addr)
	}
	return nil
}
