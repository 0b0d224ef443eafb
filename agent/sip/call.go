package sip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/hardphone/hardphone/agent/config"
	"github.com/hardphone/hardphone/agent/dialplan"
	"github.com/hardphone/hardphone/agent/media"
	"github.com/hardphone/hardphone/hal/audio"
)

// Call is one call on an account, inbound or outbound: one dialog.
type Call struct {
	acct *Account
	id   string   // Call-ID
	dlg  DialogID // the dialog; immutable once the call is listed
	dir  string   // "in" or "out"
	peer string   // the peer's URI: the To of our INVITE, the From of theirs
	// peerAOR is peer's address of record (aorKey): who may replace the
	// call (RFC 3891 §3).
	peerAOR string
	// waiting: the call came in while another was up (call waiting).
	waiting bool
	// replaces is the call this one took over (RFC 3891), nil for none.
	replaces *Call
	log      *slog.Logger
	media    *media.Session // never nil once the call is listed
	started  time.Time
	done     chan struct{} // closed when the call ended
	release  func()        // gives back the call's admission slot; idempotent
	// tlsHop: the call's signalling runs over the registrar's TLS flow
	// (always for outbound calls).
	tlsHop bool
	// branch is an inbound call's INVITE branch (RFC 3261 §8.2.2.2).
	branch string

	mu          sync.Mutex // guards the fields below
	cli         *sipgo.DialogClientSession
	srv         *sipgo.DialogServerSession
	state       string // "ringing", "answered", "established", "ended"
	established time.Time
	setup       time.Duration
	endReason   string
	hold        bool
	answerCh    chan struct{} // manual answer; nil once answered
	// remoteCSeq is the dialog's remote sequence number (RFC 3261 §12.2.2),
	// empty (remoteSet false) until the peer's first request.
	remoteCSeq uint32
	remoteSet  bool
	// ackCSeq is the CSeq of the INVITE whose 2xx waits for its ACK; 0 for
	// none. acked: the initial 2xx was acknowledged.
	ackCSeq uint32
	acked   bool
	// xfer is the call's latest transfer, either role; nil for none.
	xfer *transfer
	// replacing: an INVITE with Replaces is taking the call over.
	replacing bool
}

// CallStatus is a snapshot of a call.
type CallStatus struct {
	ID string `json:"call_id"`
	// Dialog is "CALL-ID;LOCAL-TAG;REMOTE-TAG": it names the call when two
	// dialogs share a Call-ID.
	Dialog    string      `json:"dialog"`
	Direction string      `json:"direction"`
	Peer      string      `json:"peer"`
	State     string      `json:"state"`
	Hold      bool        `json:"hold"`
	SetupMS   float64     `json:"setup_ms,omitempty"`
	EndReason string      `json:"end_reason,omitempty"`
	Media     media.Stats `json:"media"`
	// Waiting: an inbound call that arrived while another was up (call
	// waiting); answering it holds the others.
	Waiting bool `json:"waiting,omitempty"`
	// Transfer is the call's latest transfer, nil for none.
	Transfer *TransferStatus `json:"transfer,omitempty"`
}

// ID is the call's Call-ID. Two calls may share one; Dialog never.
func (c *Call) ID() string { return c.id }

// Dialog names the call's dialog (RFC 3261 §12).
func (c *Call) Dialog() DialogID { return c.dlg }

// Done is closed when the call has ended.
func (c *Call) Done() <-chan struct{} { return c.done }

// Media returns the call's media session.
func (c *Call) Media() *media.Session { return c.media }

// RemoteMedia lists the peer's RTP/RTCP addresses (for firewall pinholes).
func (c *Call) RemoteMedia() []netip.AddrPort { return c.media.RemoteAddrs() }

// Status returns a snapshot.
func (c *Call) Status() CallStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return CallStatus{
		ID: c.id, Dialog: c.dlg.String(), Direction: c.dir, Peer: c.peer, State: c.state, Hold: c.hold,
		SetupMS: float64(c.setup.Microseconds()) / 1000, EndReason: c.endReason, Media: c.media.Stats(),
		Waiting: c.waiting, Transfer: c.transferStatus(),
	}
}

// SetupTime is INVITE sent (or received) to media secured.
func (c *Call) SetupTime() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.setup
}

// EndReason says why the call ended ("" while it runs).
func (c *Call) EndReason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endReason
}

func (a *Account) mediaConfig(signalingTLS bool) media.Config {
	sec := media.SecuritySDES
	if a.cfg.MediaSecurity == config.MediaDTLS {
		sec = media.SecurityDTLS
	}
	return media.Config{
		Security: sec, SignalingTLS: signalingTLS, LocalIP: a.media.LocalIP,
		PortMin: a.media.PortMin, PortMax: a.media.PortMax, Logger: a.log,
		Destinations: media.DestinationPolicy{Allow: a.media.AllowPeers, Own: a.ownAddrs(), Check: a.media.PeerCheck},
	}
}

// ownAddrs lists the phone's own addresses, read per call (an address may
// come and go with DHCP): media must never be aimed at the phone itself.
func (a *Account) ownAddrs() []netip.Addr {
	out := []netip.Addr{a.media.LocalIP.Unmap()}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		a.log.Warn("list own addresses", "error", err)
		return out
	}
	for _, ad := range addrs {
		if n, ok := ad.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out
}

// CallOptions are the audio ends of a call.
type CallOptions struct {
	Source audio.Source // nil: silence
	Sink   audio.Sink   // nil: discard
}

// Dial places a call to target (a SIP URI or a user at the account's domain)
// through the registrar. It returns once media is secured; any failure to
// agree SRTP ends the call (BYE) before a single RTP packet is sent.
func (a *Account) Dial(ctx context.Context, target string, opts CallOptions) (*Call, error) {
	ru, err := a.targetURI(target)
	if err != nil {
		return nil, err
	}
	c, err := a.dial(ctx, ru, opts, dialExtras{})
	if err != nil {
		return c, fmt.Errorf("dial %s: %w", target, err)
	}
	return c, nil
}

// dialExtras are what a call the phone places by itself (a transfer's)
// adds to Dial.
type dialExtras struct {
	// headers go on the INVITE (Replaces, Referred-By).
	headers []sip.Header
	// progress is told every provisional response; nil for none.
	progress func(code int, reason string)
	// audio asks the account's Inbound for the call's audio ends, as for
	// a call that rang: nobody handed any.
	audio bool
}

// dial places a call to ru: every outbound call goes through here, past
// the call caps and the dialling policy.
func (a *Account) dial(ctx context.Context, ru sip.Uri, opts CallOptions, extra dialExtras) (*Call, error) {
	if !a.Registered() {
		return nil, ErrNotRegistered
	}
	release, ok := a.admit()
	if !ok {
		a.count(&a.counters.CallCap)
		return nil, fmt.Errorf("%w (max_calls %d)", ErrCallLimit, a.cfg.MaxCalls)
	}
	// The toll-fraud guard, on the URI the INVITE goes to, last before it
	// leaves: a call refused here is not counted, one let through is.
	if err := a.dialAllowed(ru); err != nil {
		release()
		return nil, err
	}
	ms, err := media.NewSession(a.mediaConfig(true))
	if err != nil {
		release()
		return nil, fmt.Errorf("media: %w", err)
	}
	ms.SetSource(opts.Source)
	ms.SetSink(opts.Sink)
	offer, err := ms.Offer()
	if err != nil {
		ms.Close()
		release()
		return nil, fmt.Errorf("offer: %w", err)
	}
	start := a.clock.Now()
	dlg, err := a.invite(ctx, ru, offer, extra)
	if err != nil {
		ms.Close()
		release()
		return nil, err
	}
	id := dlg.InviteRequest.CallID().Value()
	local, _ := dlg.InviteRequest.From().Params.Get("tag")
	remote, _ := dlg.InviteResponse.To().Params.Get("tag")
	c := &Call{acct: a, id: id, dlg: DialogID{CallID: id, LocalTag: local, RemoteTag: remote}, dir: "out",
		peer: ru.String(), peerAOR: aorKey(ru), media: ms, started: start, done: make(chan struct{}), release: release, tlsHop: true,
		cli: dlg, state: "answered"}
	c.log = a.log.With("call_id", c.id, "dialog", c.dlg.String(), "peer", c.peer)
	a.addCall(c)
	if extra.audio {
		a.mu.Lock()
		in := a.inbound
		a.mu.Unlock()
		if in != nil {
			o := in(c)
			ms.SetSource(o.Source)
			ms.SetSink(o.Sink)
		}
	}

	if err := ms.SetAnswer(dlg.InviteResponse.Body()); err != nil {
		// RFC 3264 gives no way to refuse an answer: ACK the 2xx (RFC 3261
		// §13.2.2.4 requires it), then end the dialog at once.
		a.countMediaRefusal(err)
		c.log.Warn("answer refused by media policy", "error", err)
		if aerr := c.ack(ctx, dlg); aerr != nil {
			c.log.Warn("ack", "error", aerr)
		}
		c.hangup(ctx, "media policy: "+err.Error())
		return c, fmt.Errorf("%w: %v", ErrInsecureMedia, err)
	}
	// Media is agreed: the agent opens the firewall pinhole now, before the
	// DTLS handshake or the first SRTP packet.
	a.events(Event{Account: a.cfg.Name, Kind: EventMedia, Call: c})
	if err := c.ack(ctx, dlg); err != nil {
		c.hangup(ctx, "ack failed")
		return c, fmt.Errorf("ack: %w", err)
	}
	if err := ms.Start(ctx); err != nil {
		a.countMediaRefusal(err)
		c.hangup(ctx, "media: "+err.Error())
		return c, fmt.Errorf("%w: %v", ErrInsecureMedia, err)
	}
	c.mu.Lock()
	c.state, c.established, c.setup = "established", a.clock.Now(), a.clock.Now().Sub(start)
	c.mu.Unlock()
	a.mu.Lock()
	a.counters.CallsOut++
	a.mu.Unlock()
	c.log.Info("call established", "direction", "out", "setup_ms", c.SetupTime().Milliseconds(),
		"srtp", ms.Stats().Suite)
	a.events(Event{Account: a.cfg.Name, Kind: EventCallStarted, Call: c})
	go c.watchMedia()
	return c, nil
}

func (a *Account) countMediaRefusal(err error) {
	a.mu.Lock()
	a.counters.CallsRefusedMedia++
	dest := errors.Is(err, media.ErrDestination)
	if dest {
		a.counters.MediaDestinationsRefused++
	}
	a.mu.Unlock()
	if dest {
		a.incident(Security{Incident: IncidentMediaDestination, Detail: err.Error()})
	}
}

// dialAllowed asks the account's dialling policy about ru (its user part
// unescaped, so "%2B" cannot hide a '+') and counts the call when it may
// go. A refusal is ErrDialRefused and a security incident.
func (a *Account) dialAllowed(ru sip.Uri) error {
	user, err := url.PathUnescape(ru.User)
	if err != nil {
		return fmt.Errorf("%w: user part %q: %v", ErrDialRefused, ru.User, err)
	}
	t := dialplan.ParseTarget(ru.Scheme + ":" + user + "@" + ru.Host)
	if err := a.dialled.Take(a.cfg.Name, a.cfg.Dialing, t, a.clock.Now()); err != nil {
		a.mu.Lock()
		a.counters.DialRefused++
		a.mu.Unlock()
		a.log.Warn("call refused by the dialling policy", "error", err)
		a.incident(Security{Incident: IncidentDialRefused, Method: "INVITE", Detail: err.Error(), Target: ru.String()})
		return err
	}
	return nil
}

// dialString drops the visual separators (RFC 3966 §5.1.1: space, '-',
// '.', '(' and ')') from a number as a person types it ("+49 30 1234-5");
// anything else that is not a number is left as it is.
func dialString(s string) string {
	if strings.Contains(s, "@") {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case r >= '0' && r <= '9', r == '*', r == '#', r == '+' && i == 0:
			b.WriteRune(r)
		case r == ' ', r == '-', r == '.', r == '(', r == ')':
		default:
			return s
		}
	}
	return b.String()
}

func (a *Account) targetURI(target string) (sip.Uri, error) {
	var u sip.Uri
	if !strings.Contains(target, ":") {
		target = dialString(target)
		target = "sip:" + target
		if !strings.Contains(target, "@") {
			target += "@" + a.cfg.Domain
		}
	}
	if err := sip.ParseUri(target, &u); err != nil {
		return u, fmt.Errorf("target %q: %w", target, err)
	}
	if u.Scheme != "sip" && u.Scheme != "sips" {
		return u, fmt.Errorf("target %q: scheme %q, want sip or sips", target, u.Scheme)
	}
	return u, nil
}

// invite sends the INVITE via the registrar flow and waits for a 2xx,
// answering one proxy challenge under the digest policy.
func (a *Account) invite(ctx context.Context, ru sip.Uri, offer []byte, extra dialExtras) (*sipgo.DialogClientSession, error) {
	dua := &sipgo.DialogUA{Client: a.cli, ContactHDR: a.dialogContact()}
	from := &sip.FromHeader{Address: a.aor(), Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	req := sip.NewRequest(sip.INVITE, ru)
	req.SetTransport("TLS")
	req.SetDestination(a.registrar.String())
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: ru.Scheme, User: ru.User, Host: ru.Host}, Params: sip.NewParams()})
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.AppendHeader(sip.NewHeader("Allow", allowMethods))
	for _, h := range extra.headers {
		req.AppendHeader(h)
	}
	req.SetBody(offer)
	if err := sipgo.ClientRequestBuild(a.cli, req); err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		dlg, err := dua.WriteInvite(ctx, req)
		if err != nil {
			return nil, err
		}
		var opts sipgo.AnswerOptions
		if extra.progress != nil {
			opts.OnResponse = func(res *sip.Response) error {
				if res.IsProvisional() {
					extra.progress(res.StatusCode, res.Reason)
				}
				return nil
			}
		}
		err = dlg.WaitAnswer(ctx, opts)
		if err == nil {
			return dlg, nil
		}
		var de *sipgo.ErrDialogResponse
		if !errors.As(err, &de) {
			dlg.Close()
			return nil, err
		}
		res := de.Res
		dlg.Close()
		if (res.StatusCode != 401 && res.StatusCode != 407) || attempt > 0 {
			return nil, &ResponseError{"INVITE", res.StatusCode, res.Reason}
		}
		next := req.Clone()
		next.RemoveHeader("Via")
		next.CSeq().SeqNo++
		if _, err := a.authorize(next, res, false); err != nil {
			return nil, fmt.Errorf("invite: %w", err)
		}
		req = next
	}
}

const allowMethods = "INVITE, ACK, CANCEL, BYE, OPTIONS, REFER, NOTIFY"

// ack sends the ACK for the 2xx on the registrar flow (RFC 3261 §13.2.2.4).
func (c *Call) ack(ctx context.Context, dlg *sipgo.DialogClientSession) error {
	target := dlg.InviteRequest.Recipient
	if ct := dlg.InviteResponse.Contact(); ct != nil {
		target = ct.Address
	}
	ack := sip.NewRequest(sip.ACK, target)
	ack.SetDestination(c.acct.registrar.String())
	return dlg.WriteRequest(ack)
}

// Hangup ends the call: BYE when established, CANCEL or 486/603 otherwise.
func (c *Call) Hangup(ctx context.Context) { c.hangup(ctx, "local hangup") }

// hangup ends the call; hdrs go on the BYE (a Reason).
func (c *Call) hangup(ctx context.Context, reason string, hdrs ...sip.Header) {
	c.mu.Lock()
	if c.state == "ended" {
		c.mu.Unlock()
		return
	}
	prev := c.state
	cli, srv := c.cli, c.srv
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var err error
	switch {
	case srv != nil && prev == "ringing":
		err = srv.Respond(603, "Decline", nil)
	case cli != nil:
		err = c.sendBye(ctx, cli.InviteRequest.Recipient, cli.InviteResponse.Contact(), cli.Do, hdrs)
	case srv != nil:
		err = c.sendBye(ctx, srv.InviteRequest.From().Address, srv.InviteRequest.Contact(), srv.Do, hdrs)
	}
	if err != nil {
		c.log.Warn("hangup", "error", err)
	}
	c.end(reason)
}

func (c *Call) sendBye(ctx context.Context, target sip.Uri, contact *sip.ContactHeader,
	do func(context.Context, *sip.Request) (*sip.Response, error), hdrs []sip.Header) error {
	if contact != nil {
		target = contact.Address
	}
	bye := sip.NewRequest(sip.BYE, target)
	bye.SetDestination(c.acct.registrar.String())
	for _, h := range hdrs {
		bye.AppendHeader(h)
	}
	res, err := do(ctx, bye)
	if err != nil {
		return fmt.Errorf("bye: %w", err)
	}
	if !res.IsSuccess() {
		return fmt.Errorf("bye: %w", &ResponseError{"BYE", res.StatusCode, res.Reason})
	}
	return nil
}

// end marks the call ended, stops media and tells the agent.
func (c *Call) end(reason string) {
	c.mu.Lock()
	if c.state == "ended" {
		c.mu.Unlock()
		return
	}
	c.state, c.endReason = "ended", reason
	cli, srv := c.cli, c.srv
	c.mu.Unlock()
	if err := c.media.Close(); err != nil {
		c.log.Debug("media close", "error", err)
	}
	if cli != nil {
		cli.Close()
	}
	if srv != nil {
		srv.Close()
	}
	close(c.done)
	st := c.media.Stats()
	c.log.Info("call ended", "reason", reason, "rtp_sent", st.PacketsSent, "rtp_received", st.PacketsReceived,
		"auth_failures", st.AuthFailures, "replays", st.Replays)
	c.acct.removeCall(c)
	// The media's ports are closed: the slot can go to the next call.
	c.release()
	c.acct.events(Event{Account: c.acct.cfg.Name, Kind: EventCallEnded, Call: c})
}

// Hold puts the call on hold (a=sendonly) or takes it off (sendrecv) with a
// re-INVITE that keeps the negotiated SRTP.
func (c *Call) Hold(ctx context.Context, on bool) error {
	c.mu.Lock()
	state := c.state
	c.mu.Unlock()
	if state != "established" {
		return fmt.Errorf("hold: call is %s", state)
	}
	offer, err := c.media.Reoffer(on)
	if err != nil {
		return fmt.Errorf("hold: %w", err)
	}
	target, do, write := c.dialogTarget()
	req := sip.NewRequest(sip.INVITE, target)
	req.SetDestination(c.acct.registrar.String())
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(offer)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := do(ctx, req)
	if err != nil {
		return fmt.Errorf("hold re-invite: %w", err)
	}
	if !res.IsSuccess() {
		return fmt.Errorf("hold: %w", &ResponseError{"INVITE", res.StatusCode, res.Reason})
	}
	ack := sip.NewRequest(sip.ACK, target)
	ack.SetDestination(c.acct.registrar.String())
	if err := write(ack); err != nil {
		return fmt.Errorf("hold ack: %w", err)
	}
	if err := c.media.SetAnswer(res.Body()); err != nil {
		c.hangup(ctx, "media policy on re-invite: "+err.Error())
		return fmt.Errorf("hold: %w: %v", ErrInsecureMedia, err)
	}
	c.mu.Lock()
	c.hold = on
	c.mu.Unlock()
	c.acct.events(Event{Account: c.acct.cfg.Name, Kind: EventMedia, Call: c})
	c.log.Info("hold changed", "hold", on)
	return nil
}

// Answer answers a ringing inbound call on an account with answer = "manual".
func (c *Call) Answer() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.answerCh == nil {
		return fmt.Errorf("answer: call is %s", c.state)
	}
	close(c.answerCh)
	c.answerCh = nil
	return nil
}

// addCall lists a call under its dialog. A dialog is never listed twice:
// our local tag is fresh for every call.
func (a *Account) addCall(c *Call) {
	a.mu.Lock()
	a.calls[c.dlg] = c
	a.mu.Unlock()
}

func (a *Account) removeCall(c *Call) {
	a.mu.Lock()
	if a.calls[c.dlg] == c {
		delete(a.calls, c.dlg)
	}
	a.mu.Unlock()
}

func (a *Account) callByDialog(d DialogID) *Call {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls[d]
}

// Calls returns the account's live calls.
func (a *Account) Calls() []*Call {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]*Call, 0, len(a.calls))
	for _, c := range a.calls {
		out = append(out, c)
	}
	return out
}
