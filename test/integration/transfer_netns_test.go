package integration

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/agent/control"
	"github.com/hardphone/hardphone/agent/sip"
	"github.com/hardphone/hardphone/test"
)

// Call transfer (RFC 3515 REFER, RFC 5589) and Replaces (RFC 3891)
// through the real Kamailio, with baresip as the third party: hardphone as
// the transferor and as the transferee, blind and attended.

// waitTransfer waits for an EventTransfer of p whose call's transfer is in
// state, and returns that call's status.
func (p *phone) waitTransfer(t *testing.T, state string, timeout time.Duration) sip.CallStatus {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev := <-p.events:
			if ev.Kind != sip.EventTransfer || ev.Call == nil {
				continue
			}
			if st := ev.Call.Status(); st.Transfer != nil && st.Transfer.State == state {
				return st
			}
		case <-deadline:
			t.Fatalf("no transfer in state %q within %v; status %+v", state, timeout, p.acct.Status())
			return sip.CallStatus{}
		}
	}
}

// peerIs matches a baresip event about a call with user.
func peerIs(typ, user string) func(test.Event) bool {
	return func(ev test.Event) bool {
		return ev.Type == typ && strings.Contains(ev.PeerURI, "sip:"+user+"@")
	}
}

func baresipPeer(t *testing.T, e *env, user string) *test.Baresip {
	t.Helper()
	b := test.StartBaresip(t, test.BaresipKamailio(e.k, user), test.BaresipAnswerMode("auto"))
	b.WaitRegistered(t, 10*time.Second)
	return b
}

// TestTransferBlindAsTransferor: alice (hardphone) talks to bob (baresip)
// and transfers him to carol (baresip) over the control protocol. Bob
// accepts the REFER and calls carol; his NOTIFYs reach alice through
// Kamailio's in-dialog routing; alice ends her call with bob once he
// reports 200.
func TestTransferBlindAsTransferor(t *testing.T) {
	e := newEnv(t)
	bob, carol := baresipPeer(t, e, "bob"), baresipPeer(t, e, "carol")
	p := e.startPhone(t, phoneConf{user: "alice", extra: "\n[account.dialing]\nhome_country = \"+49\"\n"}, nil)
	p.waitRegistered(t)
	c := control.NewClient(p.cfg.ControlSocket)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := c.Dial(ctx, "", "sip:bob@"+e.k.IP())
	if err != nil {
		t.Fatalf("dial bob: %v", err)
	}
	bob.WaitEvent(t, "CALL_ESTABLISHED", 10*time.Second)
	// The toll-fraud guard: bob would call the premium-rate number on
	// alice's behalf, so alice refuses to ask him.
	if _, err := c.Transfer(ctx, "", cs.Dialog, "+49 900 1234567"); !errors.Is(err, control.ErrForbidden) || !strings.Contains(err.Error(), "premium-rate") {
		t.Fatalf("transfer to a premium-rate number = %v, want forbidden by the dialling policy", err)
	}
	if st, err := c.Call(ctx, control.CmdCallHold, "", cs.Dialog); err != nil || st.State != "established" {
		t.Fatalf("call after the refused transfer: %+v, %v; want established", st, err)
	}
	if _, err := c.Call(ctx, control.CmdCallUnhold, "", cs.Dialog); err != nil {
		t.Fatalf("unhold: %v", err)
	}
	st, err := c.Transfer(ctx, "", cs.Dialog, "carol")
	if err != nil {
		t.Fatalf("transfer: %v\n%s", err, e.k.SIPDump())
	}
	if st.Transfer == nil || st.Transfer.Role != sip.TransferRoleTransferor || st.Transfer.Target != "sip:carol@"+e.k.IP() {
		t.Errorf("transfer status = %+v, want transferor to sip:carol@%s", st.Transfer, e.k.IP())
	}
	if !st.Hold {
		t.Errorf("the transferee is not on hold during the transfer (RFC 5589 §6)")
	}
	carol.WaitEventFunc(t, 15*time.Second, peerIs("CALL_ESTABLISHED", "bob"))
	done := p.waitTransfer(t, sip.TransferDone, 15*time.Second)
	if done.Transfer.Code != 200 {
		t.Errorf("final sipfrag = %d, want 200", done.Transfer.Code)
	}
	waitFor(t, 10*time.Second, func() bool { return len(p.acct.Calls()) == 0 })
	bob.WaitEventFunc(t, 10*time.Second, peerIs("CALL_CLOSED", "alice"))
	if n := p.acct.Status().Counters.TransfersOut; n != 1 {
		t.Errorf("transfers_out = %d, want 1", n)
	}
	// The REFER and the NOTIFYs went through Kamailio inside the dialog.
	waitFor(t, 5*time.Second, func() bool {
		d := e.k.SIPDump()
		return strings.Contains(d, "REFER sip:") && strings.Contains(d, "NOTIFY sip:") && strings.Contains(d, "SIP/2.0 200 OK\r\n")
	})
	// bob and carol talk on.
	carol.Hangup(t)
}

// TestTransferBlindAsTransferee: bob (baresip) talks to alice (hardphone,
// allow_refer on) and transfers her with his /transfer command. A transfer
// to a premium-rate number is refused by alice's dialling policy exactly
// as dialling it would be (NOTIFY 403, the call with bob goes on); one to
// carol (baresip) is placed, reported to bob as 200, and ends alice's call
// with bob.
func TestTransferBlindAsTransferee(t *testing.T) {
	e := newEnv(t)
	bob, carol := baresipPeer(t, e, "bob"), baresipPeer(t, e, "carol")
	p := e.startPhone(t, phoneConf{user: "alice", extra: "allow_refer = true\n\n[account.dialing]\nhome_country = \"+49\"\n"}, nil)
	p.waitRegistered(t)

	bob.Dial(t, "sip:alice@"+e.k.IP())
	first := p.waitEvent(t, sip.EventCallStarted, 15*time.Second).Call
	bob.WaitEvent(t, "CALL_ESTABLISHED", 10*time.Second)

	// The toll-fraud guard sees the referred number.
	if resp := bob.Command(t, "transfer", "sip:+499001234567@"+e.k.IP()); !resp.OK {
		t.Fatalf("baresip transfer: %s", resp.Data)
	}
	failed := p.waitTransfer(t, sip.TransferFailed, 15*time.Second)
	if failed.Transfer.Code != 403 || failed.Transfer.Role != sip.TransferRoleTransferee {
		t.Errorf("refused transfer = %+v, want transferee, 403", failed.Transfer)
	}
	if n := p.acct.Status().Counters.DialRefused; n != 1 {
		t.Errorf("dial_refused = %d, want 1", n)
	}
	bob.WaitEvent(t, "TRANSFER_FAILED", 10*time.Second)
	// baresip 1.0 hangs up a call whose transfer failed; alice does not.
	<-first.Done()
	if r := first.EndReason(); r != "remote hangup" {
		t.Errorf("call with bob ended %q after the refused transfer, want by bob (remote hangup)", r)
	}
	for _, ev := range bob.Events() {
		if ev.Type == "CALL_ESTABLISHED" && strings.Contains(ev.PeerURI, "+49900") {
			t.Fatalf("a call to the premium-rate number was established: %s", ev.Raw)
		}
	}

	bob.Dial(t, "sip:alice@"+e.k.IP())
	first = p.waitEvent(t, sip.EventCallStarted, 15*time.Second).Call
	bob.WaitEvent(t, "CALL_ESTABLISHED", 10*time.Second)
	if resp := bob.Command(t, "transfer", "sip:carol@"+e.k.IP()); !resp.OK {
		t.Fatalf("baresip transfer: %s", resp.Data)
	}
	p.waitTransfer(t, sip.TransferDone, 20*time.Second)
	carol.WaitEventFunc(t, 10*time.Second, peerIs("CALL_ESTABLISHED", "alice"))
	<-first.Done()
	calls := p.acct.Calls()
	if len(calls) != 1 || !strings.HasPrefix(calls[0].Status().Peer, "sip:carol@") || calls[0].Status().State != "established" {
		t.Fatalf("alice's calls after the transfer: %+v, want one established with carol", p.acct.Status().Calls)
	}
	if n := p.acct.Status().Counters.TransfersIn; n != 2 {
		t.Errorf("transfers_in = %d, want 2", n)
	}
	calls[0].Hangup(context.Background())
	carol.WaitEvent(t, "CALL_CLOSED", 10*time.Second)
}

// TestTransferAttendedBaresipTarget: alice (hardphone) holds bob
// (hardphone, allow_refer on), consults carol (baresip), then transfers bob
// to carol (RFC 5589 §7): bob's INVITE to carol carries the Replaces of
// alice's call with carol. baresip 1.0 does not implement Replaces, so it
// takes bob's call as a new one and leaves alice's up; alice, told 200 by
// bob, ends both her calls (RFC 5589 §6.1, and the consultation call
// after the grace a Replaces-aware target has to end it). Bob and carol
// talk on.
func TestTransferAttendedBaresipTarget(t *testing.T) {
	e := newEnv(t)
	carol := baresipPeer(t, e, "carol")
	bob := e.startPhone(t, phoneConf{user: "bob", extra: "allow_refer = true\n"}, nil)
	alice := e.startPhone(t, phoneConf{user: "alice"}, nil)
	bob.waitRegistered(t)
	alice.waitRegistered(t)
	c := control.NewClient(alice.cfg.ControlSocket)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	toBob, err := c.Dial(ctx, "", "sip:bob@"+e.k.IP())
	if err != nil {
		t.Fatalf("dial bob: %v", err)
	}
	toCarol, err := c.Dial(ctx, "", "sip:carol@"+e.k.IP())
	if err != nil {
		t.Fatalf("dial carol: %v", err)
	}
	carol.WaitEventFunc(t, 10*time.Second, peerIs("CALL_ESTABLISHED", "alice"))
	if _, err := c.TransferTo(ctx, "", toBob.Dialog, toCarol.Dialog); err != nil {
		t.Fatalf("attended transfer: %v\n%s", err, e.k.SIPDump())
	}
	carol.WaitEventFunc(t, 15*time.Second, peerIs("CALL_ESTABLISHED", "bob"))
	done := alice.waitTransfer(t, sip.TransferDone, 15*time.Second)
	if !done.Transfer.Attended {
		t.Errorf("transfer = %+v, want attended", done.Transfer)
	}
	waitFor(t, 15*time.Second, func() bool { return len(alice.acct.Calls()) == 0 })
	carol.WaitEventFunc(t, 10*time.Second, peerIs("CALL_CLOSED", "alice"))
	waitFor(t, 10*time.Second, func() bool {
		calls := bob.acct.Calls()
		return len(calls) == 1 && strings.HasPrefix(calls[0].Status().Peer, "sip:carol@") && calls[0].Status().State == "established"
	})
	// Bob's INVITE carried the Replaces of alice's dialog with carol, and
	// alice's Referred-By (RFC 3892).
	waitFor(t, 5*time.Second, func() bool { return strings.Contains(e.k.SIPDump(), "Replaces: "+toCarol.ID+";to-tag=") })
	if d := e.k.SIPDump(); !strings.Contains(d, "Referred-By: <sip:alice@") {
		t.Errorf("no Referred-By of alice in the signalling")
	}
	bob.acct.Calls()[0].Hangup(context.Background())
	carol.WaitEventFunc(t, 10*time.Second, peerIs("CALL_CLOSED", "bob"))
}

// TestTransferAttendedReplaces: the same with carol a hardphone too, so
// the target honours the Replaces (RFC 3891 §3): carol answers bob's
// INVITE at once (it takes over a call she had accepted, so no call
// waiting rings) and ends her call with alice herself; alice, told 200 by
// bob, ends hers with bob. Every role of an attended transfer is a
// hardphone here: transferor, transferee and target.
func TestTransferAttendedReplaces(t *testing.T) {
	e := newEnv(t)
	bob := e.startPhone(t, phoneConf{user: "bob", extra: "allow_refer = true\n"}, nil)
	carol := e.startPhone(t, phoneConf{user: "carol", extra: "allow_refer = true\n"}, nil)
	alice := e.startPhone(t, phoneConf{user: "alice"}, nil)
	for _, p := range []*phone{alice, bob, carol} {
		p.waitRegistered(t)
	}
	ctx := context.Background()
	toBob, err := alice.acct.Dial(ctx, "sip:bob@"+e.k.IP(), sip.CallOptions{})
	if err != nil {
		t.Fatalf("dial bob: %v", err)
	}
	toCarol, err := alice.acct.Dial(ctx, "sip:carol@"+e.k.IP(), sip.CallOptions{})
	if err != nil {
		t.Fatalf("dial carol: %v", err)
	}
	waitFor(t, 10*time.Second, func() bool {
		calls := carol.acct.Calls()
		return len(calls) == 1 && calls[0].Status().State == "established"
	})
	consult := carol.acct.Calls()[0]
	if err := toBob.Transfer(ctx, sip.TransferTarget{Consult: toCarol}); err != nil {
		t.Fatalf("attended transfer: %v", err)
	}
	<-consult.Done()
	if r := consult.EndReason(); r != "replaced" {
		t.Errorf("carol's call with alice ended %q, want replaced", r)
	}
	<-toCarol.Done()
	if r := toCarol.EndReason(); r != "remote hangup" {
		t.Errorf("alice's consultation call ended %q, want remote hangup (carol's BYE)", r)
	}
	<-toBob.Done()
	alice.waitTransfer(t, sip.TransferDone, 10*time.Second)
	calls := carol.acct.Calls()
	if len(calls) != 1 || !strings.HasPrefix(calls[0].Status().Peer, "sip:bob@") {
		t.Fatalf("carol's calls: %+v, want one with bob", carol.acct.Status().Calls)
	}
	waitFor(t, 10*time.Second, func() bool { return calls[0].Status().State == "established" })
	if st := calls[0].Status(); st.Waiting {
		t.Errorf("the replacing call rang as a waiting call")
	}
	if n := carol.acct.Status().Counters.CallsReplaced; n != 1 {
		t.Errorf("carol calls_replaced = %d, want 1", n)
	}
	waitFor(t, 10*time.Second, func() bool {
		bc := bob.acct.Calls()
		return len(bc) == 1 && bc[0].Status().State == "established" && strings.HasPrefix(bc[0].Status().Peer, "sip:carol@")
	})
	calls[0].Hangup(ctx)
	waitFor(t, 10*time.Second, func() bool { return len(bob.acct.Calls()) == 0 })
}

// The attacks on call transfer, each by a hostile proxy over the phone's
// own TLS flow (test/hostile_registrar.go), against a phone that allows
// transfers: what a REFER may make it call, how often, and which calls an
// INVITE with Replaces may take over.

// referReq sends a REFER (or what claims to be one) in c's dialog with the
// tags given and the header lines, and waits for the phone's final answer.
func (c *hcall) referReq(fromTag, toTag string, hdrs ...string) *test.SIPMessage {
	c.t.Helper()
	c.cseq++
	c.f.Write(c.t, c.request("REFER", c.cseq, fromTag, toTag, randHex(8), "", hdrs...))
	cseq := fmt.Sprintf("%d REFER", c.cseq)
	return c.f.Next(c.t, 10*time.Second, func(m *test.SIPMessage) bool {
		return test.SIPResponseTo("REFER", c.callID, true)(m) && m.Get("CSeq") == cseq
	})
}

// inviteWith sends a fresh INVITE of c (no To tag) with the header lines
// and waits for its final answer, keeping the phone's tag of a 2xx.
func (c *hcall) inviteWith(sdp string, hdrs ...string) *test.SIPMessage {
	c.t.Helper()
	c.branch = randHex(8)
	c.f.Write(c.t, c.request("INVITE", c.cseq, c.from, "", c.branch, sdp, hdrs...))
	res := c.final("INVITE")
	if res.Status() >= 200 && res.Status() < 300 {
		c.to = test.Tag(res.Get("To"))
	}
	return res
}

// otherInvites lists the INVITEs the phone sent on other dialogs than
// those named: calls a REFER made it place.
func otherInvites(f *test.HostileFlow, callIDs ...string) []string {
	var out []string
	for _, m := range f.Messages() {
		if m.IsRequest() && m.Method() == "INVITE" && !slices.Contains(callIDs, m.Get("Call-ID")) {
			out = append(out, m.Start)
		}
	}
	return out
}

// TestAttackREFER: REFERs that are outside a dialog, in a foreign or early
// dialog, malformed, or aimed where the policy does not let a transfer
// go (another scheme or domain, embedded headers, a method, this phone,
// a Replaces for one of the phone's own calls) are refused and place no
// call; one to a premium-rate number is accepted, meets the dialling
// policy and is reported back as 403; a flood of them is cut at the
// account's REFER rate. The call they were sent in stays up throughout.
func TestAttackREFER(t *testing.T) {
	e := newHostileEnv(t)
	p, f := hostilePhone(t, e, phoneConf{extra: "allow_refer = true\n\n[account.dialing]\nhome_country = \"+49\"\n"})
	legit := newSRTPPeer(t)
	c := newHCall(t, f)
	phoneKey, _ := establish(t, p, c, legit)
	call := oneCall(t, p, c.callID)
	dom := e.hostile.IP
	esc := func(s string) string {
		return strings.NewReplacer("@", "%40", ";", "%3B", "=", "%3D", "<", "%3C", ">", "%3E").Replace(s)
	}
	own := esc(fmt.Sprintf("%s;to-tag=%s;from-tag=%s", c.callID, c.to, c.from))

	for _, tt := range []struct {
		name     string
		from, to string
		hdrs     []string
		code     int
	}{
		{"outside a dialog", c.from, "", []string{"Refer-To: <sip:carol@" + dom + ">"}, 403},
		{"foreign dialog", "evil", c.to, []string{"Refer-To: <sip:carol@" + dom + ">"}, 481},
		{"no Refer-To", c.from, c.to, nil, 400},
		{"two Refer-To", c.from, c.to, []string{"Refer-To: <sip:carol@" + dom + ">", "Refer-To: <sip:dave@" + dom + ">"}, 400},
		{"compact and long Refer-To", c.from, c.to, []string{"r: <sip:carol@" + dom + ">", "Refer-To: <sip:dave@" + dom + ">"}, 400},
		{"tel URI", c.from, c.to, []string{"Refer-To: <tel:+19005550100>"}, 403},
		{"sips URI", c.from, c.to, []string{"Refer-To: <sips:carol@" + dom + ">"}, 403},
		{"http URI", c.from, c.to, []string{"Refer-To: <http://evil.example/premium>"}, 403},
		{"another domain", c.from, c.to, []string{"Refer-To: <sip:carol@evil.example>"}, 403},
		{"embedded Route", c.from, c.to, []string{"Refer-To: <sip:carol@" + dom + "?Route=%3Csip:evil.example%3Blr%3E>"}, 403},
		{"embedded From", c.from, c.to, []string{"Refer-To: <sip:carol@" + dom + "?From=%3Csip:ceo%40" + dom + "%3E>"}, 403},
		{"method BYE", c.from, c.to, []string{"Refer-To: <sip:carol@" + dom + ";method=BYE>"}, 403},
		{"this phone", c.from, c.to, []string{"Refer-To: <sip:alice@" + dom + ">"}, 403},
		{"Replaces of the phone's own call", c.from, c.to, []string{"Refer-To: <sip:carol@" + dom + "?Replaces=" + own + ">"}, 403},
		{"malformed Replaces", c.from, c.to, []string{"Refer-To: <sip:carol@" + dom + "?Replaces=x%3Bto-tag%3Da>"}, 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := c.referReq(tt.from, tt.to, tt.hdrs...)
			if res.Status() != tt.code {
				t.Errorf("REFER answered %q, want %d", res.Start, tt.code)
			}
		})
	}
	if got := p.acct.Status().Counters.REFERRefused; got != 10 {
		t.Errorf("refer_refused = %d, want 10 (the policy refusals)", got)
	}

	// A REFER in an early dialog: a second call rings (call waiting).
	c2 := newHCall(t, f)
	c2.sendInvite(newSRTPPeer(t).offer())
	ringing := f.Next(t, 10*time.Second, func(m *test.SIPMessage) bool {
		return test.SIPResponseTo("INVITE", c2.callID, false)(m) && m.Status() == 180
	})
	if res := c2.referReq(c2.from, test.Tag(ringing.Get("To")), "Refer-To: <sip:carol@"+dom+">"); res.Status() != 403 {
		t.Errorf("REFER in an early dialog answered %q, want 403", res.Start)
	}
	c2.f.Write(t, c2.request("CANCEL", 1, c2.from, "", c2.branch, ""))
	if res := c2.final("INVITE"); res.Status() != 487 {
		t.Errorf("cancelled INVITE answered %q, want 487", res.Start)
	}

	// Put the phone on hold from our side, as a transferor does, so that
	// following a REFER sends nothing but NOTIFYs.
	if res := c.inDialog("INVITE", c.from, c.to, strings.Replace(legit.offer(), "a=sendrecv", "a=sendonly", 1)); res.Status() != 200 {
		t.Fatalf("hold re-INVITE answered %q", res.Start)
	}
	c.ack()
	// follow answers the transferee's NOTIFYs of one REFER and returns the
	// final one.
	follow := func(referCSeq int) *test.SIPMessage {
		t.Helper()
		id := fmt.Sprintf("refer;id=%d", referCSeq)
		for {
			n := f.Next(t, 10*time.Second, test.SIPRequestOf("NOTIFY", c.callID))
			respond(t, f, n, 200, "OK", "", "")
			if n.Get("Event") != id || !strings.HasPrefix(n.Get("Content-Type"), "message/sipfrag") {
				t.Fatalf("NOTIFY Event %q, Content-Type %q; want %q, message/sipfrag", n.Get("Event"), n.Get("Content-Type"), id)
			}
			if strings.HasPrefix(n.Get("Subscription-State"), "terminated") {
				return n
			}
		}
	}
	premium := "Refer-To: <sip:+499001234567@" + dom + ">"
	res := c.referReq(c.from, c.to, premium)
	if res.Status() != 202 {
		t.Fatalf("REFER to a premium-rate number answered %q, want 202 (then refused by the dialling policy)", res.Start)
	}
	if final := follow(c.cseq); !strings.HasPrefix(final.Body, "SIP/2.0 403 ") {
		t.Errorf("final NOTIFY body %q, want SIP/2.0 403", final.Body)
	}
	if got := p.acct.Status().Counters.DialRefused; got != 1 {
		t.Errorf("dial_refused = %d, want 1", got)
	}

	// A flood: one REFER after another, each followed to its end.
	accepted, limited := 0, 0
	for range 8 {
		res := c.referReq(c.from, c.to, premium)
		switch res.Status() {
		case 202:
			accepted++
			follow(c.cseq)
		case 503:
			limited++
			if res.Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After")
			}
		default:
			t.Errorf("flood REFER answered %q, want 202 or 503", res.Start)
		}
	}
	if accepted > 3 || limited < 5 {
		t.Errorf("flood of 8 REFERs: %d accepted, %d rate-limited; want at most 3 accepted (the burst, one spent already)", accepted, limited)
	}
	if got := p.acct.Status().Counters.DialRefused; got != 1+accepted {
		t.Errorf("dial_refused = %d, want %d", got, 1+accepted)
	}
	if inv := otherInvites(f, c.callID, c2.callID); len(inv) != 0 {
		t.Errorf("the phone placed calls for REFERs: %q", inv)
	}
	if st := call.Status().State; st != "established" {
		t.Fatalf("call is %s after the REFER attacks, want established", st)
	}
	// Resumed, the call carries media again.
	if res := c.inDialog("INVITE", c.from, c.to, legit.offer()); res.Status() != 200 {
		t.Fatalf("resume re-INVITE answered %q", res.Start)
	}
	c.ack()
	legit.expectMedia(t, phoneKey)
	if res := c.inDialog("BYE", c.from, c.to, ""); res.Status() != 200 {
		t.Fatalf("BYE answered %q, want 200", res.Start)
	}

	// With allow_refer off (the default) every REFER is refused.
	e2 := newHostileEnv(t)
	p2, f2 := hostilePhone(t, e2, phoneConf{})
	c3 := newHCall(t, f2)
	establish(t, p2, c3, newSRTPPeer(t))
	res = c3.referReq(c3.from, c3.to, "Refer-To: <sip:carol@"+e2.hostile.IP+">")
	if res.Status() != 403 || !strings.Contains(res.Get("Warning"), "allow_refer") {
		t.Errorf("REFER with allow_refer off answered %q (Warning %q), want 403 naming allow_refer", res.Start, res.Get("Warning"))
	}
	if got := p2.acct.Status().Counters.REFERRefused; got != 1 {
		t.Errorf("refer_refused = %d, want 1", got)
	}
}

// TestAttackReplaces: INVITEs with Replaces (RFC 3891) that name a call of
// the phone with a foreign tag, come from a stranger (or one who names a
// stranger as referrer), carry early-only for a confirmed call, name a
// ringing call, or carry two Replaces or a Join are refused, and the call
// they aimed at keeps its media and its peer. The party of the call (here
// by Referred-By, as an attended transfer hands it on) takes it over: the
// phone answers at once and ends the replaced call with a BYE. With
// allow_refer off nobody does.
func TestAttackReplaces(t *testing.T) {
	e := newHostileEnv(t)
	p, f := hostilePhone(t, e, phoneConf{extra: "allow_refer = true\n"})
	legit := newSRTPPeer(t)
	c1 := newHCall(t, f)
	phoneKey, _ := establish(t, p, c1, legit)
	call := oneCall(t, p, c1.callID)
	before := call.RemoteMedia()
	party := "<sip:" + c1.user + "@hostile.test>"
	good := fmt.Sprintf("Replaces: %s;to-tag=%s;from-tag=%s", c1.callID, c1.to, c1.from)

	// A second call rings (call waiting): an early dialog to aim at.
	c2 := newHCall(t, f)
	c2.sendInvite(newSRTPPeer(t).offer())
	ringing := f.Next(t, 10*time.Second, func(m *test.SIPMessage) bool {
		return test.SIPResponseTo("INVITE", c2.callID, false)(m) && m.Status() == 180
	})
	early := fmt.Sprintf("Replaces: %s;to-tag=%s;from-tag=%s", c2.callID, test.Tag(ringing.Get("To")), c2.from)

	evil := newSRTPPeer(t)
	for _, tt := range []struct {
		name string
		hdrs []string
		code int
	}{
		{"foreign to-tag", []string{fmt.Sprintf("Replaces: %s;to-tag=evil;from-tag=%s", c1.callID, c1.from), "Referred-By: " + party}, 481},
		{"foreign from-tag", []string{fmt.Sprintf("Replaces: %s;to-tag=%s;from-tag=evil", c1.callID, c1.to), "Referred-By: " + party}, 481},
		{"tags swapped", []string{fmt.Sprintf("Replaces: %s;to-tag=%s;from-tag=%s", c1.callID, c1.from, c1.to), "Referred-By: " + party}, 481},
		{"a stranger", []string{good}, 403},
		{"referred by a stranger", []string{good, "Referred-By: <sip:carol@hostile.test>"}, 403},
		{"early-only on a confirmed call", []string{good + ";early-only", "Referred-By: " + party}, 486},
		{"a ringing call", []string{early, "Referred-By: <sip:" + c2.user + "@hostile.test>"}, 481},
		{"two Replaces", []string{good, good, "Referred-By: " + party}, 400},
		{"Replaces and Join", []string{good, "Join: " + strings.TrimPrefix(good, "Replaces: "), "Referred-By: " + party}, 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newHCall(t, f)
			if res := c.inviteWith(evil.offer(), tt.hdrs...); res.Status() != tt.code {
				t.Errorf("INVITE with Replaces answered %q, want %d", res.Start, tt.code)
			}
			if st := call.Status().State; st != "established" {
				t.Fatalf("the call is %s, want established", st)
			}
			if got := call.RemoteMedia(); !slices.Equal(got, before) {
				t.Errorf("media moved to %v, want %v", got, before)
			}
		})
	}
	if got := p.acct.Status().Counters.ReplacesRefused; got != 9 {
		t.Errorf("replaces_refused = %d, want 9", got)
	}
	for _, m := range f.Messages() {
		if m.IsRequest() && m.Method() == "BYE" {
			t.Fatalf("the phone hung up a call (%s) for a refused Replaces", m.Get("Call-ID"))
		}
	}
	legit.expectMedia(t, phoneKey)
	c2.f.Write(t, c2.request("CANCEL", 1, c2.from, "", c2.branch, ""))
	if res := c2.final("INVITE"); res.Status() != 487 {
		t.Errorf("cancelled INVITE answered %q, want 487", res.Start)
	}

	// The transferee the party referred takes the call over.
	next := newSRTPPeer(t)
	c3 := newHCall(t, f)
	res := c3.inviteWith(next.offer(), good, "Referred-By: "+party)
	if res.Status() != 200 {
		t.Fatalf("legitimate INVITE with Replaces answered %q, want 200", res.Start)
	}
	c3.ack()
	bye := f.Next(t, 10*time.Second, test.SIPRequestOf("BYE", c1.callID))
	respond(t, f, bye, 200, "OK", "", "")
	<-call.Done()
	if r := call.EndReason(); r != "replaced" {
		t.Errorf("replaced call ended %q, want replaced", r)
	}
	key, _ := phoneMedia(t, res.Body)
	next.expectMedia(t, key)
	if n := p.acct.Status().Counters.CallsReplaced; n != 1 {
		t.Errorf("calls_replaced = %d, want 1", n)
	}
	if res := c3.inDialog("BYE", c3.from, c3.to, ""); res.Status() != 200 {
		t.Fatalf("BYE answered %q, want 200", res.Start)
	}

	// allow_refer off: the party itself may not replace its call.
	e2 := newHostileEnv(t)
	p2, f2 := hostilePhone(t, e2, phoneConf{})
	c4 := newHCall(t, f2)
	establish(t, p2, c4, newSRTPPeer(t))
	c5 := newHCall(t, f2)
	c5.user = c4.user
	res = c5.inviteWith(newSRTPPeer(t).offer(), fmt.Sprintf("Replaces: %s;to-tag=%s;from-tag=%s", c4.callID, c4.to, c4.from))
	if res.Status() != 403 {
		t.Errorf("Replaces with allow_refer off answered %q, want 403", res.Start)
	}
	if st := oneCall(t, p2, c4.callID).Status().State; st != "established" {
		t.Errorf("call is %s, want established", st)
	}
}

// TestCallWaiting: alice (hardphone, answer = "auto") talks to bob; carol's
// call rings instead of being answered by itself (call waiting);
// answering it over the control protocol puts bob on hold, and call.swap
// goes back to bob, holding carol. With call_waiting = "busy" a second
// call is refused 486.
func TestCallWaiting(t *testing.T) {
	e := newEnv(t)
	bob, carol := baresipPeer(t, e, "bob"), baresipPeer(t, e, "carol")
	p := e.startPhone(t, phoneConf{user: "alice"}, nil)
	p.waitRegistered(t)
	c := control.NewClient(p.cfg.ControlSocket)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	bob.Dial(t, "sip:alice@"+e.k.IP())
	first := p.waitEvent(t, sip.EventCallStarted, 15*time.Second).Call
	carol.Dial(t, "sip:alice@"+e.k.IP())
	waiting := p.waitEvent(t, sip.EventIncoming, 10*time.Second).Call
	if st := waiting.Status(); !st.Waiting || st.State != "ringing" {
		t.Fatalf("carol's call = %+v, want waiting and ringing", st)
	}
	st, err := c.Call(ctx, control.CmdCallAnswer, "", waiting.Dialog().String())
	if err != nil {
		t.Fatalf("answer the waiting call: %v", err)
	}
	if st.State == "ended" {
		t.Fatalf("answered call ended: %s", st.EndReason)
	}
	if !first.Status().Hold {
		t.Errorf("bob's call not on hold after answering carol's")
	}
	carol.WaitEvent(t, "CALL_ESTABLISHED", 10*time.Second)
	waitFor(t, 10*time.Second, func() bool { return waiting.Status().State == "established" })

	if _, err := c.Call(ctx, control.CmdCallSwap, "", first.Dialog().String()); err != nil {
		t.Fatalf("swap to bob: %v", err)
	}
	if first.Status().Hold || !waiting.Status().Hold {
		t.Errorf("after swap: bob hold %v, carol hold %v; want false, true", first.Status().Hold, waiting.Status().Hold)
	}
	before := first.Media().Stats().PacketsReceived
	waitFor(t, 10*time.Second, func() bool { return first.Media().Stats().PacketsReceived > before+25 })
	first.Hangup(ctx)
	waiting.Hangup(ctx)
	bob.WaitEvent(t, "CALL_CLOSED", 10*time.Second)
	carol.WaitEvent(t, "CALL_CLOSED", 10*time.Second)

	busy := e.startPhone(t, phoneConf{user: "dave", extra: "call_waiting = \"busy\"\n"}, nil)
	busy.waitRegistered(t)
	bob.Dial(t, "sip:dave@"+e.k.IP())
	busy.waitEvent(t, sip.EventCallStarted, 15*time.Second)
	carol.Dial(t, "sip:dave@"+e.k.IP())
	closed := carol.WaitEvent(t, "CALL_CLOSED", 10*time.Second)
	if !strings.Contains(closed.Param, "486") {
		t.Errorf("second call to a call_waiting = busy phone closed with %q, want 486", closed.Param)
	}
	if n := len(busy.acct.Calls()); n != 1 {
		t.Errorf("dave has %d calls, want 1", n)
	}
	// The ACK of the 486 is not a foreign dialog.
	if n := busy.acct.Status().Counters.ForeignDialog; n != 0 {
		t.Errorf("dave foreign_dialog = %d, want 0", n)
	}
}
