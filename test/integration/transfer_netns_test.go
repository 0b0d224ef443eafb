package integration

import (
	"context"
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
	p := e.startPhone(t, phoneConf{user: "alice"}, nil)
	p.waitRegistered(t)
	c := control.NewClient(p.cfg.ControlSocket)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := c.Dial(ctx, "", "sip:bob@"+e.k.IP())
	if err != nil {
		t.Fatalf("dial bob: %v", err)
	}
	bob.WaitEvent(t, "CALL_ESTABLISHED", 10*time.Second)
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
