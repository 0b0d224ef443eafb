package integration

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hardphone/hardphone/agent/sip"
	"github.com/hardphone/hardphone/test"
)

// The attacks of issue 10 items 1 and 2, each by a hostile proxy over the
// phone's own TLS flow: requests that name a live call's Call-ID but not
// its dialog (RFC 3261 §12: Call-ID and both tags).

// TestAttackForeignTagReINVITE: a re-INVITE with the call's Call-ID and
// foreign tags is answered 481: the media does not move to the attacker's
// address and the phone's SDES key is not repeated.
func TestAttackForeignTagReINVITE(t *testing.T) {
	e := newHostileEnv(t)
	p, f := hostilePhone(t, e, phoneConf{})
	legit, evil := newSRTPPeer(t), newSRTPPeer(t)
	c := newHCall(t, f)
	phoneKey, _ := establish(t, p, c, legit)
	call := oneCall(t, p, c.callID)
	before := call.RemoteMedia()
	for _, tt := range []struct{ name, from, to string }{
		{"both tags foreign", "evil-from", "evil-to"},
		{"foreign remote tag", "evil-from", c.to},
		{"foreign local tag", c.from, "evil-to"},
		{"no From tag match, To tag of the caller", c.to, c.from},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := c.inDialog("INVITE", tt.from, tt.to, evil.offer())
			if res.Status() != 481 {
				t.Errorf("foreign-tag re-INVITE answered %q, want 481", res.Start)
			}
			if res.Body != "" {
				t.Errorf("answer to a foreign re-INVITE carries a body (the phone's key?):\n%s", res.Body)
			}
			if got := call.RemoteMedia(); !slices.Equal(got, before) {
				t.Errorf("media moved to %v, want %v", got, before)
			}
		})
	}
	if got := p.acct.Status().Counters.ForeignDialog; got < 4 {
		t.Errorf("foreign_dialog = %d, want >= 4", got)
	}
	// The legitimate dialog still works: its media still reaches the
	// caller, and a re-INVITE with the right tags is answered.
	legit.expectMedia(t, phoneKey)
	if res := c.inDialog("INVITE", c.from, c.to, legit.offer()); res.Status() != 200 {
		t.Fatalf("legitimate re-INVITE answered %q, want 200", res.Start)
	}
	c.ack()
	if res := c.inDialog("BYE", c.from, c.to, ""); res.Status() != 200 {
		t.Fatalf("legitimate BYE answered %q, want 200", res.Start)
	}
	<-call.Done()
}

// TestAttackForeignTagBYE: a BYE with the Call-ID and foreign tags, or out
// of CSeq order, leaves the call up.
func TestAttackForeignTagBYE(t *testing.T) {
	e := newHostileEnv(t)
	p, f := hostilePhone(t, e, phoneConf{})
	legit := newSRTPPeer(t)
	c := newHCall(t, f)
	phoneKey, _ := establish(t, p, c, legit)
	call := oneCall(t, p, c.callID)
	for _, tt := range []struct{ name, from, to string }{
		{"both tags foreign", "evil-from", "evil-to"},
		{"foreign remote tag", "evil-from", c.to},
		{"foreign local tag", c.from, "evil-to"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if res := c.inDialog("BYE", tt.from, tt.to, ""); res.Status() != 481 {
				t.Errorf("foreign-tag BYE answered %q, want 481", res.Start)
			}
		})
	}
	// RFC 3261 §12.2.2: a request below the remote CSeq is out of order.
	if res := c.inDialogCSeq("BYE", 1, c.from, c.to, ""); res.Status() != 500 {
		t.Errorf("BYE with CSeq 1 (not above the INVITE's) answered %q, want 500", res.Start)
	}
	select {
	case <-call.Done():
		t.Fatalf("call ended (%s) by a BYE that is not of its dialog", call.EndReason())
	default:
	}
	if st := call.Status().State; st != "established" {
		t.Fatalf("call state = %s, want established", st)
	}
	legit.expectMedia(t, phoneKey)
	if res := c.inDialog("BYE", c.from, c.to, ""); res.Status() != 200 {
		t.Fatalf("legitimate BYE answered %q, want 200", res.Start)
	}
	<-call.Done()
	if r := call.EndReason(); r != "remote hangup" {
		t.Errorf("end reason = %q, want remote hangup", r)
	}
}

// TestAttackForeignCANCEL: a CANCEL that matches no pending INVITE server
// transaction (RFC 3261 §9.2: another branch, or a wrong From tag) is
// answered 481 and never ends a call, ringing or established.
func TestAttackForeignCANCEL(t *testing.T) {
	e := newHostileEnv(t)
	p, f := hostilePhone(t, e, phoneConf{answer: "manual"})
	legit := newSRTPPeer(t)
	c := newHCall(t, f)
	c.sendInvite(legit.offer())
	f.Next(t, 10*time.Second, func(m *test.SIPMessage) bool {
		return test.SIPResponseTo("INVITE", c.callID, false)(m) && m.Status() == 180
	})
	ringing := oneCall(t, p, c.callID)
	// Wrong From tag on another branch: not the INVITE's transaction.
	c.f.Write(t, c.request("CANCEL", c.cseq, "evil-from", "", randHex(8), ""))
	if res := c.final("CANCEL"); res.Status() != 481 {
		t.Errorf("CANCEL with a wrong From tag answered %q, want 481", res.Start)
	}
	// Right tags, another branch.
	c.f.Write(t, c.request("CANCEL", c.cseq, c.from, "", randHex(8), ""))
	if res := c.final("CANCEL"); res.Status() != 481 {
		t.Errorf("CANCEL on another branch answered %q, want 481", res.Start)
	}
	if st := ringing.Status().State; st != "ringing" {
		t.Fatalf("ringing call is %s after foreign CANCELs, want ringing", st)
	}
	if err := ringing.Answer(); err != nil {
		t.Fatalf("Answer: %v", err)
	}
	res := c.final("INVITE")
	if res.Status() != 200 {
		t.Fatalf("INVITE answered %q, want 200", res.Start)
	}
	c.to = test.Tag(res.Get("To"))
	c.ack()
	p.waitEvent(t, sip.EventCallStarted, 10*time.Second)
	phoneKey, _ := phoneMedia(t, res.Body)
	// Established: a CANCEL on another branch matches nothing (481); one on
	// the INVITE's own branch matches a transaction that already has its
	// final response, which RFC 3261 §9.2 answers 200 with no effect.
	for _, tt := range []struct {
		name, from, branch string
		want               []int
	}{
		{"dialog tags, another branch", c.from, randHex(8), []int{481}},
		{"wrong From tag, another branch", "evil-from", randHex(8), []int{481}},
		{"the INVITE's branch", c.from, c.branch, []int{200, 481}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c.f.Write(t, c.request("CANCEL", c.cseq, tt.from, "", tt.branch, ""))
			if res := c.final("CANCEL"); !slices.Contains(tt.want, res.Status()) {
				t.Errorf("CANCEL of an established call answered %q, want %v", res.Start, tt.want)
			}
		})
	}
	select {
	case <-ringing.Done():
		t.Fatalf("established call ended (%s) by a CANCEL", ringing.EndReason())
	default:
	}
	legit.expectMedia(t, phoneKey)
	if res := c.inDialog("BYE", c.from, c.to, ""); res.Status() != 200 {
		t.Fatalf("legitimate BYE answered %q, want 200", res.Start)
	}
	<-ringing.Done()
}

// TestAttackBlindACK: an ACK with a wrong To tag does not confirm the
// phone's 200 OK: it keeps retransmitting it, and the media waits for the
// real ACK.
func TestAttackBlindACK(t *testing.T) {
	e := newHostileEnv(t)
	p, f := hostilePhone(t, e, phoneConf{})
	legit := newSRTPPeer(t)
	c := newHCall(t, f)
	res := c.invite(legit.offer())
	if res.Status() != 200 {
		t.Fatalf("INVITE answered %q, want 200", res.Start)
	}
	c.ackWith(c.from, "blind-to-tag")
	c.ackWith("blind-from-tag", c.to)
	// RFC 3261 §13.3.1.4: without its ACK the 2xx is sent again.
	f.Next(t, 10*time.Second, func(m *test.SIPMessage) bool {
		return test.SIPResponseTo("INVITE", c.callID, true)(m) && m.Status() == 200
	})
	if st := oneCall(t, p, c.callID).Status().State; st == "established" {
		t.Fatalf("call established by blind ACKs")
	}
	c.ack()
	p.waitEvent(t, sip.EventCallStarted, 10*time.Second)
	phoneKey, _ := phoneMedia(t, res.Body)
	legit.expectMedia(t, phoneKey)
	if res := c.inDialog("BYE", c.from, c.to, ""); res.Status() != 200 {
		t.Fatalf("BYE answered %q, want 200", res.Start)
	}
}

// TestAttackDuplicateCallID: a second INVITE with a live call's Call-ID is
// a dialog of its own (another From tag) or a merged request (482); it
// never replaces the first call, which keeps its media and hangs up
// cleanly with its own tags.
func TestAttackDuplicateCallID(t *testing.T) {
	e := newHostileEnv(t)
	// Both calls are answered by themselves: no call waiting.
	p, f := hostilePhone(t, e, phoneConf{extra: "call_waiting = \"parallel\"\n"})
	legit, evil := newSRTPPeer(t), newSRTPPeer(t)
	c1 := newHCall(t, f)
	phoneKey, _ := establish(t, p, c1, legit)
	first := oneCall(t, p, c1.callID)
	before := first.RemoteMedia()

	c2 := newHCall(t, f)
	c2.callID, c2.from = c1.callID, "second-from"
	res := c2.invite(evil.offer())
	if res.Status() != 200 {
		t.Fatalf("INVITE with a live Call-ID and another From tag answered %q, want 200 (a dialog of its own)", res.Start)
	}
	c2.ack()
	p.waitEvent(t, sip.EventCallStarted, 10*time.Second)
	calls := callsByID(p, c1.callID)
	if len(calls) != 2 {
		t.Fatalf("phone lists %d calls with Call-ID %s, want 2 dialogs", len(calls), c1.callID)
	}
	if got := first.RemoteMedia(); !slices.Equal(got, before) {
		t.Errorf("first call's media moved to %v, want %v", got, before)
	}
	if calls[0].Dialog() == calls[1].Dialog() {
		t.Fatalf("both calls have dialog %s", first.Dialog())
	}
	// The control protocol names a call by Call-ID only while that is
	// unambiguous; the dialog always works.
	if _, err := p.acct.FindCall(c1.callID, ""); !errors.Is(err, sip.ErrAmbiguousCall) {
		t.Errorf("FindCall(%s) with two dialogs = %v, want ErrAmbiguousCall", c1.callID, err)
	}
	if got, err := p.acct.FindCall(c1.callID, first.Dialog().String()); err != nil || got != first {
		t.Errorf("FindCall(dialog %s) = %v, %v; want the first call", first.Dialog(), got, err)
	}
	legit.expectMedia(t, phoneKey)

	// The first call hangs up with its own tags.
	hung := make(chan struct{})
	go func() { defer close(hung); first.Hangup(context.Background()) }()
	bye := f.Next(t, 10*time.Second, test.SIPRequestOf("BYE", c1.callID))
	if got, want := test.Tag(bye.Get("To")), c1.from; got != want {
		t.Errorf("BYE To tag = %q, want the first caller's %q", got, want)
	}
	if got, want := test.Tag(bye.Get("From")), c1.to; got != want {
		t.Errorf("BYE From tag = %q, want the first call's local tag %q", got, want)
	}
	respond(t, f, bye, 200, "OK", "", "")
	<-hung
	<-first.Done()
	second := oneCall(t, p, c1.callID)
	if second.Status().State != "established" {
		t.Errorf("second call is %s after the first hung up, want established", second.Status().State)
	}
	if res := c2.inDialog("BYE", c2.from, c2.to, ""); res.Status() != 200 {
		t.Fatalf("second call's BYE answered %q, want 200", res.Start)
	}
	<-second.Done()
}

// TestAttackMergedINVITE: RFC 3261 §8.2.2.2: an INVITE without To tag whose
// Call-ID and From tag are those of a pending INVITE but on another branch
// is a merged request: 482, and the pending call rings on.
func TestAttackMergedINVITE(t *testing.T) {
	e := newHostileEnv(t)
	p, f := hostilePhone(t, e, phoneConf{answer: "manual"})
	legit, evil := newSRTPPeer(t), newSRTPPeer(t)
	c := newHCall(t, f)
	c.sendInvite(legit.offer())
	f.Next(t, 10*time.Second, func(m *test.SIPMessage) bool {
		return test.SIPResponseTo("INVITE", c.callID, false)(m) && m.Status() == 180
	})
	ringing := oneCall(t, p, c.callID)
	c.f.Write(t, c.request("INVITE", c.cseq, c.from, "", randHex(8), evil.offer()))
	res := f.Next(t, 10*time.Second, func(m *test.SIPMessage) bool {
		return test.SIPResponseTo("INVITE", c.callID, false)(m) && m.Status() != 180 && m.Status() != 100
	})
	if res.Status() != 482 {
		t.Fatalf("merged INVITE answered %q, want 482", res.Start)
	}
	if n := len(callsByID(p, c.callID)); n != 1 {
		t.Fatalf("phone has %d calls for the Call-ID, want 1", n)
	}
	if err := ringing.Answer(); err != nil {
		t.Fatalf("Answer: %v", err)
	}
	res = c.final("INVITE")
	if res.Status() != 200 {
		t.Fatalf("INVITE answered %q, want 200", res.Start)
	}
	c.to = test.Tag(res.Get("To"))
	c.ack()
	p.waitEvent(t, sip.EventCallStarted, 10*time.Second)
	phoneKey, _ := phoneMedia(t, res.Body)
	legit.expectMedia(t, phoneKey)
	if res := c.inDialog("BYE", c.from, c.to, ""); res.Status() != 200 {
		t.Fatalf("BYE answered %q, want 200", res.Start)
	}
}

// TestAttackCallCap: 128 INVITEs from 128 callers. Beyond the per-account
// cap (4 by default) they are answered 486 before any port is bound, so
// the RTP range is never exhausted; once the ringing ones are cancelled a
// legitimate call works.
func TestAttackCallCap(t *testing.T) {
	e := newHostileEnv(t)
	p, f := hostilePhone(t, e, phoneConf{answer: "manual"})
	evil := newSRTPPeer(t)
	var calls []*hcall
	for i := range 128 {
		c := newHCall(t, f)
		c.user = fmt.Sprintf("caller%d", i)
		c.sendInvite(evil.offer())
		calls = append(calls, c)
	}
	var ringing []*hcall
	busy := 0
	for _, c := range calls {
		res := f.Next(t, 10*time.Second, func(m *test.SIPMessage) bool {
			return test.SIPResponseTo("INVITE", c.callID, false)(m) && m.Status() >= 180
		})
		switch res.Status() {
		case 180:
			ringing = append(ringing, c)
		case 486:
			busy++
		default:
			t.Errorf("INVITE %s answered %q, want 180 or 486", c.callID, res.Start)
		}
	}
	if len(ringing) != 4 || busy != 124 {
		t.Errorf("flood: %d ringing, %d busy; want 4 ringing (the cap) and 124 answered 486", len(ringing), busy)
	}
	if n := boundPorts(t, p); n > 2*4 {
		t.Errorf("%d RTP ports bound during the flood, want at most 8 (4 calls)", n)
	}
	if got := p.acct.Status().Counters.CallCap; got != busy {
		t.Errorf("call_cap = %d, want %d", got, busy)
	}
	for _, c := range ringing {
		c.f.Write(t, c.request("CANCEL", c.cseq, c.from, "", c.branch, ""))
		if res := c.final("INVITE"); res.Status() != 487 {
			t.Errorf("cancelled INVITE answered %q, want 487", res.Start)
		}
	}
	waitFor(t, 10*time.Second, func() bool { return len(p.acct.Calls()) == 0 })
	// A legitimate call now rings and connects.
	legit := newSRTPPeer(t)
	c := newHCall(t, f)
	c.sendInvite(legit.offer())
	f.Next(t, 10*time.Second, func(m *test.SIPMessage) bool {
		return test.SIPResponseTo("INVITE", c.callID, false)(m) && m.Status() == 180
	})
	if err := oneCall(t, p, c.callID).Answer(); err != nil {
		t.Fatalf("Answer: %v", err)
	}
	res := c.final("INVITE")
	if res.Status() != 200 {
		t.Fatalf("legitimate INVITE after the flood answered %q, want 200", res.Start)
	}
	c.to = test.Tag(res.Get("To"))
	c.ack()
	phoneKey, _ := phoneMedia(t, res.Body)
	legit.expectMedia(t, phoneKey)
	if res := c.inDialog("BYE", c.from, c.to, ""); res.Status() != 200 {
		t.Fatalf("BYE answered %q, want 200", res.Start)
	}
}

// TestAttackINVITEFlood: INVITEs from one caller beyond the rate limit are
// answered 503 and counted; another caller still gets through.
func TestAttackINVITEFlood(t *testing.T) {
	e := newHostileEnv(t)
	p, f := hostilePhone(t, e, phoneConf{})
	// Offers the media policy refuses, so no call holds a slot.
	const plain = "v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0\r\n"
	var flood []*hcall
	for range 40 {
		c := newHCall(t, f)
		c.user = "mallory"
		c.sendInvite(plain)
		flood = append(flood, c)
	}
	limited := 0
	for _, c := range flood {
		switch res := c.final("INVITE"); res.Status() {
		case 503:
			limited++
			if res.Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After")
			}
		case 488, 486: // refused by media policy, or at the cap while others are
		default:
			t.Errorf("flood INVITE answered %q, want 488, 486 or 503", res.Start)
		}
	}
	if limited < 20 {
		t.Errorf("%d of 40 INVITEs from one caller rate-limited, want most (>= 20)", limited)
	}
	if got := p.acct.Status().Counters.INVITEFlood; got != limited {
		t.Errorf("invite_flood = %d, want %d", got, limited)
	}
	legit := newSRTPPeer(t)
	c := newHCall(t, f)
	c.user = "bob"
	phoneKey, _ := establish(t, p, c, legit)
	legit.expectMedia(t, phoneKey)
	if res := c.inDialog("BYE", c.from, c.to, ""); res.Status() != 200 {
		t.Fatalf("BYE answered %q, want 200", res.Start)
	}
}
