package sip

import (
	"context"
	"errors"
	"fmt"
	"net"
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
		respond(a, tx, req, 200, "OK", nil, sip.NewHeader("Allow", allowMethods))
	}))
	a.srv.OnRefer(a.guard(func(req *sip.Request, tx sip.ServerTransaction) {
		if !a.cfg.AllowRefer {
			respond(a, tx, req, 403, "Forbidden", nil, sip.NewHeader("Warning", `399 hardphone "REFER refused by policy"`))
			return
		}
		respond(a, tx, req, 501, "Not Implemented", nil, sip.NewHeader("Warning", `399 hardphone "call transfer is not implemented yet"`))
	}))
	a.srv.OnNoRoute(a.guard(func(req *sip.Request, tx sip.ServerTransaction) {
		if req.IsAck() {
			return
		}
		respond(a, tx, req, 405, "Method Not Allowed", nil, sip.NewHeader("Allow", allowMethods))
	}))
}

func warning(text string) sip.Header {
	// RFC 3261 §20.43: warn-text is a quoted-string.
	return sip.NewHeader("Warning", `399 hardphone "`+strings.ReplaceAll(text, `"`, `'`)+`"`)
}

func (a *Account) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if to := req.To(); to != nil {
		if _, ok := to.Params.Get("tag"); ok {
			a.onReInvite(req, tx)
			return
		}
	}
	ct := req.ContentType()
	if len(req.Body()) == 0 || ct == nil || !strings.EqualFold(strings.TrimSpace(ct.Value()), "application/sdp") {
		// We need the offer in the INVITE to decide on SRTP before ringing.
		respond(a, tx, req, 488, "Not Acceptable Here", nil, warning("offer required in INVITE"))
		return
	}
	start := a.clock.Now()
	tlsHop := strings.EqualFold(req.Transport(), "TLS")
	ms, err := media.NewSession(a.mediaConfig(tlsHop))
	if errors.Is(err, media.ErrNotAcceptable) {
		// SDES over a plain hop: the keys would cross in clear.
		a.countMediaRefusal()
		a.log.Warn("inbound call refused by media policy", "error", err, "call_id", callID(req))
		respond(a, tx, req, 488, "Not Acceptable Here", nil, warning(err.Error()))
		return
	}
	if err != nil {
		a.log.Error("media session", "error", err)
		respond(a, tx, req, 500, "Server Internal Error", nil)
		return
	}
	answer, err := ms.Answer(req.Body())
	if err != nil {
		ms.Close()
		a.countMediaRefusal()
		a.log.Warn("inbound offer refused by media policy", "error", err, "call_id", callID(req))
		respond(a, tx, req, 488, "Not Acceptable Here", nil, warning(err.Error()))
		return
	}
	dua := &sipgo.DialogUA{Client: a.cli, ContactHDR: a.dialogContact()}
	dlg, err := dua.ReadInvite(req, tx)
	if err != nil {
		ms.Close()
		respond(a, tx, req, 400, "Bad Request", nil, warning(err.Error()))
		return
	}
	c := &Call{acct: a, id: callID(req), dir: "in", peer: req.From().Address.String(), media: ms,
		started: start, done: make(chan struct{}), srv: dlg, state: "ringing", answerCh: make(chan struct{}),
		remoteCSeq: req.CSeq().SeqNo}
	c.log = a.log.With("call_id", c.id, "peer", c.peer)
	a.mu.Lock()
	in := a.inbound
	a.counters.CallsIn++
	a.mu.Unlock()
	if in != nil {
		o := in(c)
		ms.SetSource(o.Source)
		ms.SetSink(o.Sink)
	}
	a.addCall(c)
	a.events(Event{Account: a.cfg.Name, Kind: EventIncoming, Call: c})
	a.events(Event{Account: a.cfg.Name, Kind: EventMedia, Call: c})
	if err := dlg.Respond(180, "Ringing", nil); err != nil {
		c.log.Warn("ringing", "error", err)
	}
	if a.cfg.Answer == config.AnswerAuto {
		if err := c.Answer(); err != nil {
			c.log.Warn("auto answer", "error", err)
		}
	}
	// sipgo ends the INVITE transaction when the handler returns, so the
	// handler rings until the call is answered, cancelled or times out.
	if c.answerWhenReady(answer) {
		go c.startMedia()
	}
}

// ringTimeout bounds how long an unanswered call rings.
const ringTimeout = 120 * time.Second

// answerWhenReady rings until the call is answered and sends the 200 OK;
// false when the call ended first.
func (c *Call) answerWhenReady(answer []byte) bool {
	c.mu.Lock()
	ch := c.answerCh
	c.mu.Unlock()
	if ch != nil {
		select {
		case <-ch:
		case <-c.done:
			return false
		case <-c.acct.clock.After(ringTimeout):
			c.hangup(context.Background(), "not answered")
			return false
		}
	}
	if d := c.acct.cfg.AnswerDelay; d > 0 {
		select {
		case <-c.acct.clock.After(d):
		case <-c.done:
			return false
		}
	}
	c.mu.Lock()
	srv := c.srv
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
		c.acct.countMediaRefusal()
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
}

func callID(req *sip.Request) string {
	if h := req.CallID(); h != nil {
		return h.Value()
	}
	return ""
}

func (a *Account) onReInvite(req *sip.Request, tx sip.ServerTransaction) {
	c := a.call(callID(req))
	if c == nil {
		respond(a, tx, req, 481, "Call/Transaction Does Not Exist", nil)
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
		c.log.Warn("re-offer refused by media policy", "error", err)
		respond(a, tx, req, 488, "Not Acceptable Here", nil, warning(err.Error()))
		return
	}
	c.mu.Lock()
	c.hold = c.media.Stats().Direction != "sendrecv"
	c.remoteCSeq = req.CSeq().SeqNo
	c.mu.Unlock()
	a.events(Event{Account: a.cfg.Name, Kind: EventMedia, Call: c})
	ct := a.dialogContact()
	respond(a, tx, req, 200, "OK", answer, sip.NewHeader("Content-Type", "application/sdp"), &ct)
}

func (a *Account) onAck(req *sip.Request, tx sip.ServerTransaction) {
	c := a.call(callID(req))
	if c == nil {
		return
	}
	c.mu.Lock()
	srv := c.srv
	c.mu.Unlock()
	if srv != nil {
		if err := srv.ReadAck(req, tx); err != nil && !errors.Is(err, sipgo.ErrDialogInvalidCseq) {
			c.log.Debug("ack", "error", err)
		}
	}
}

func (a *Account) onBye(req *sip.Request, tx sip.ServerTransaction) {
	c := a.call(callID(req))
	if c == nil {
		respond(a, tx, req, 481, "Call/Transaction Does Not Exist", nil)
		return
	}
	respond(a, tx, req, 200, "OK", nil)
	c.end("remote hangup")
}

func (a *Account) onCancel(req *sip.Request, tx sip.ServerTransaction) {
	c := a.call(callID(req))
	if c == nil {
		respond(a, tx, req, 481, "Call/Transaction Does Not Exist", nil)
		return
	}
	respond(a, tx, req, 200, "OK", nil)
	c.mu.Lock()
	srv, ringing := c.srv, c.state == "ringing"
	c.mu.Unlock()
	if srv != nil && ringing {
		if err := srv.Respond(487, "Request Terminated", nil); err != nil {
			c.log.Debug("487", "error", err)
		}
	}
	c.end("cancelled")
}

// FindCall returns a live call by Call-ID.
func (a *Account) FindCall(id string) (*Call, error) {
	if c := a.call(id); c != nil {
		return c, nil
	}
	return nil, fmt.Errorf("no call %q on account %s", id, a.cfg.Name)
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
			if err := a.srv.ServeUDP(pc); err != nil && ctx.Err() == nil {
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
