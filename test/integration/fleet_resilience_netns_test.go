package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/agent/control"
	"github.com/hardphone/hardphone/agent/sip"
	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/tufrepo"
	"github.com/hardphone/hardphone/test"
)

// Issue 12's resilience: a fleet server that is down must not stop a
// phone from registering and calling, and a password rotation must not
// drop a call. Both run the whole path: hpfleet with its director,
// Kamailio reading the subscriber rows hpfleet writes to PostgreSQL, two
// hardphone agents (alice, bob) with their own swtpm, enrolled and
// following the director.

// resilienceExpires is the registration lifetime the fleet's documents
// ask for (Kamailio is told to grant it): the phones refresh every 5 s,
// so a test sees many re-REGISTERs in a minute.
const resilienceExpires = "10s"

// fleetPhoneDoc is a device's configuration document: the account with
// the password the fleet seals to the phone's TPM.
func (d *directorFleet) fleetPhoneDoc(user, expires string) []byte {
	return []byte(fmt.Sprintf("[[account]]\nname = %q\nuser = %q\nregistrar = %q\ndomain = %q\npassword_cred = \"sip/%s\"\nexpires = %q\n",
		user, user, d.registrar(), d.k.IP(), user, expires))
}

// startDirectorPhone starts a factory-fresh phone's agent, waits for its
// enrolment, binds its device to user at the registrar, sets its document
// and waits until the phone runs it, proven, registered with the sealed
// password.
func (d *directorFleet) startDirectorPhone(t *testing.T, user, serial string) *runningPhone {
	t.Helper()
	path := d.phone(t, user, serial)
	p := &runningPhone{proc: startAgentProcess(t, "--config", path), path: path, user: user,
		ctl: control.NewClient(filepath.Join(filepath.Dir(path), "ctl.sock"))}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- %s: hardphone run log (tail, no debug) ---\n%s", user, tail(withoutDebug(readFile(p.proc.log)), 60))
		}
	})
	p.id = waitEnrolled(t, p.ctl.Path())
	d.k.SetDeviceUser(t, p.id, user)
	if _, err := d.admin.SetConfig(context.Background(), api.ScopeDevice, p.id, d.fleetPhoneDoc(user, resilienceExpires)); err != nil {
		t.Fatalf("config set %s: %v", user, err)
	}
	p.waitStatus(t, 60*time.Second, user+" runs its fleet document, proven and registered", func(st *control.Status) bool {
		ps := st.Provisioning
		return ps.ConfigVersion > 0 && ps.GoodVersion == ps.ConfigVersion && !ps.Trial && registered(st)
	})
	d.k.WaitRegistered(t, user, 10*time.Second)
	return p
}

// account is the phone's first account's status.
func (p *runningPhone) account(t testing.TB) sip.AccountStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := p.ctl.Status(ctx)
	if err != nil {
		t.Fatalf("%s status: %v", p.user, err)
	}
	if len(st.Accounts) == 0 {
		t.Fatalf("%s status has no account", p.user)
	}
	return st.Accounts[0]
}

// call is the phone's one call of dialog (the only call when dialog is
// ""); ok is false when there is none.
func (p *runningPhone) call(t testing.TB, dialog string) (sip.CallStatus, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := p.ctl.Status(ctx)
	if err != nil {
		return sip.CallStatus{}, false // between two runs: no call either
	}
	for _, a := range st.Accounts {
		for _, c := range a.Calls {
			if dialog == "" || c.Dialog == dialog {
				return c, true
			}
		}
	}
	return sip.CallStatus{}, false
}

// checkInFailures counts the check-ins the agent logged as failed.
func (p *runningPhone) checkInFailures() int {
	return strings.Count(readFile(p.proc.log), `"msg":"check-in failed"`)
}

// connectedCall is a call up between two phones, each side's dialog.
type connectedCall struct {
	caller, callee             *runningPhone
	callerDialog, calleeDialog string
}

// dial has from call to and waits until both sides have the call up with
// DTLS-SRTP.
func dial(t *testing.T, d *directorFleet, from, to *runningPhone) *connectedCall {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cs, err := from.ctl.Dial(ctx, "", "sip:"+to.user+"@"+d.k.IP())
	if err != nil {
		t.Fatalf("%s calls %s: %v", from.user, to.user, err)
	}
	if cs.Media.Security.String() != "dtls-srtp" {
		t.Fatalf("%s's call %+v: want DTLS-SRTP", from.user, cs)
	}
	c := &connectedCall{caller: from, callee: to, callerDialog: cs.Dialog}
	waitFor(t, 10*time.Second, func() bool {
		in, ok := to.call(t, "")
		c.calleeDialog = in.Dialog
		return ok && in.Media.Security.String() == "dtls-srtp"
	})
	return c
}

// flowing waits until SRTP went both ways on both sides by at least n
// packets more than when it was called, and fails the test if either
// side's call ended meanwhile. It returns the packets each side received.
func (c *connectedCall) flowing(t *testing.T, n uint64, timeout time.Duration) (callerGot, calleeGot uint64) {
	t.Helper()
	a0, ok := c.caller.call(t, c.callerDialog)
	if !ok {
		t.Fatalf("%s's call %s is gone", c.caller.user, c.callerDialog)
	}
	b0, ok := c.callee.call(t, c.calleeDialog)
	if !ok {
		t.Fatalf("%s's call %s is gone", c.callee.user, c.calleeDialog)
	}
	deadline := time.Now().Add(timeout)
	for {
		a, aok := c.caller.call(t, c.callerDialog)
		b, bok := c.callee.call(t, c.calleeDialog)
		if !aok || !bok {
			t.Fatalf("call dropped: %s has it %v, %s has it %v (before: %s sent %d received %d)",
				c.caller.user, aok, c.callee.user, bok, c.caller.user, a0.Media.PacketsSent, a0.Media.PacketsReceived)
		}
		if a.Media.PacketsReceived >= a0.Media.PacketsReceived+n && a.Media.PacketsSent >= a0.Media.PacketsSent+n &&
			b.Media.PacketsReceived >= b0.Media.PacketsReceived+n && b.Media.PacketsSent >= b0.Media.PacketsSent+n {
			if a.Media.AuthFailures != 0 || b.Media.AuthFailures != 0 {
				t.Fatalf("SRTP authentication failures: %s %d, %s %d", c.caller.user, a.Media.AuthFailures, c.callee.user, b.Media.AuthFailures)
			}
			return a.Media.PacketsReceived - a0.Media.PacketsReceived, b.Media.PacketsReceived - b0.Media.PacketsReceived
		}
		if time.Now().After(deadline) {
			t.Fatalf("media not flowing both ways: %s %+v -> %+v, %s %+v -> %+v", c.caller.user, a0.Media, a.Media, c.callee.user, b0.Media, b.Media)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// hangup ends the call from the caller and waits until both sides have
// no call.
func (c *connectedCall) hangup(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, ok := c.caller.call(t, c.callerDialog)
	if !ok {
		t.Fatalf("%s's call is gone before the hangup", c.caller.user)
	}
	if _, err := c.caller.ctl.Call(ctx, control.CmdCallHangup, "", a.ID); err != nil {
		t.Fatalf("hangup: %v", err)
	}
	waitFor(t, 10*time.Second, func() bool {
		_, a := c.caller.call(t, c.callerDialog)
		_, b := c.callee.call(t, c.calleeDialog)
		return !a && !b
	})
}

// reportedBy waits until hpfleet stored a check-in of the device whose
// provisioning satisfies cond.
func (d *directorFleet) reportedBy(t *testing.T, id, what string, timeout time.Duration, cond func(*api.Provisioning) bool) *api.Report {
	t.Helper()
	var last *api.Report
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		dev, err := d.admin.Device(context.Background(), id)
		if err == nil {
			for i := range dev.Reports {
				r := &dev.Reports[i].Report
				last = r
				if r.Provisioning != nil && cond(r.Provisioning) {
					return r
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no check-in reporting %s within %v; last report %+v", what, timeout, last)
	return nil
}

// TestFleetServerDown is "the fleet server is down for an hour: phones
// keep registering and calling", with the hour scaled down: what an hour
// means to a phone is what runs on timers while hpfleet is away, and each
// is made short here so that many of its cycles fail during the test:
//
//   - check-ins and director polls: every 10 s (the phone's shortest
//     checkin_interval; 15 min by default), so every failed attempt
//     backs off (5 s doubling) as it would for an hour;
//   - the director's timestamp metadata lives one minute (a day by
//     default; hpfleet re-signs it at half its life): a dead server's
//     last timestamp expires during the test and the phone must call it
//     stale, not stop;
//   - registrations are granted 10 s (Kamailio's min_expires lowered):
//     a re-REGISTER every 5 s with the password the fleet sealed.
//
// The device certificate (at least an hour, 30 days by default) is not
// shortened: an outage shorter than its remaining life does not reach
// it (a renewal due while the server is down is retried at each
// check-in, and the current certificate kept).
//
// hpfleet is stopped by PID once both phones run their documents; while
// it is down the phones re-register, alice calls bob and bob calls alice
// over DTLS-SRTP with media both ways, and alice reports her director
// metadata stale as an event; when hpfleet is back a change reaches her
// by check-sync and her check-in reports fresh metadata again.
func TestFleetServerDown(t *testing.T) {
	d := newDirectorFleetWith(t, directorOptions{
		lifetimes: tufrepo.Lifetimes{Root: 365 * 24 * time.Hour, Targets: 90 * 24 * time.Hour, Snapshot: 7 * 24 * time.Hour, Timestamp: time.Minute},
		kamailio:  []test.KamailioOption{test.KamailioMinExpires(10)},
	})
	alice := d.startDirectorPhone(t, "alice", "HP1-000020")
	bob := d.startDirectorPhone(t, "bob", "HP1-000021")
	if g := alice.account(t).Granted; g != 10 {
		t.Fatalf("alice's granted expires = %d, want 10 (the document's, granted by Kamailio)", g)
	}
	if ps := alice.status(t); ps.Stale {
		t.Fatalf("alice before the outage: %+v, want fresh metadata", ps)
	}
	before := alice.account(t).Counters
	failedBefore := alice.checkInFailures()

	// The outage.
	d.srv.Stop(t)
	down := time.Now()
	t.Logf("hpfleet (pid %d) stopped", d.srv.PID())

	// Both phones keep their registrations: wait for several refreshes
	// of each (5 s apart), none failed.
	for _, p := range []*runningPhone{alice, bob} {
		start := p.account(t).Counters
		waitFor(t, 60*time.Second, func() bool { return p.account(t).Counters.Registrations >= start.Registrations+3 })
		if a := p.account(t); !a.Registered || a.Counters.RegisterFailures != start.RegisterFailures {
			t.Fatalf("%s while hpfleet is down: registered %v, register failures %d -> %d", p.user, a.Registered,
				start.RegisterFailures, a.Counters.RegisterFailures)
		}
	}
	// Alice's director timestamp expires (a minute at most after hpfleet
	// last signed it); her next failed poll sees it: stale, an event.
	st := alice.waitStatus(t, 5*time.Minute, "alice's metadata stale", func(st *control.Status) bool { return st.Provisioning.Stale })
	if ps := st.Provisioning; ps.StaleRepository != "director" || ps.StaleRole != "timestamp" || ps.GoodVersion != ps.ConfigVersion || !registered(st) {
		t.Fatalf("alice stale: %+v, want the director's timestamp stale, her document still running, registered", ps)
	}
	if !alice.hasEvent(t, "provision.stale_metadata", `"director"`, `"timestamp"`) {
		t.Fatalf("no provision.stale_metadata event:\n%s", alice.events(t))
	}
	t.Logf("alice's metadata stale %v after hpfleet stopped", time.Since(down).Round(time.Second))

	// Calls both ways, stale or not.
	out := dial(t, d, alice, bob)
	aGot, bGot := out.flowing(t, 100, 20*time.Second)
	out.hangup(t)
	in := dial(t, d, bob, alice)
	bGot2, aGot2 := in.flowing(t, 100, 20*time.Second)
	in.hangup(t)
	if ps := alice.status(t); !ps.Stale {
		t.Fatalf("alice after the calls: %+v, want still stale (hpfleet is down)", ps)
	}

	// The registrations went on through all of it.
	after := alice.account(t)
	failed := alice.checkInFailures() - failedBefore
	if failed < 3 {
		t.Fatalf("alice logged %d failed check-ins while hpfleet was down, want several", failed)
	}
	if !after.Registered || after.Counters.RegisterFailures != before.RegisterFailures {
		t.Fatalf("alice after the outage: registered %v, register failures %d -> %d", after.Registered,
			before.RegisterFailures, after.Counters.RegisterFailures)
	}
	outage := time.Since(down)
	t.Logf("hpfleet down %v: alice's check-ins (each a director poll) failed %d times, her registration refreshed %d times (none failed); "+
		"calls while down: alice->bob %d/%d packets received, bob->alice %d/%d (DTLS-SRTP)",
		outage.Round(time.Second), failed, after.Counters.Registrations-before.Registrations, aGot, bGot, bGot2, aGot2)

	// hpfleet comes back; a change reaches alice by check-sync, her
	// metadata is fresh again and her check-in says so.
	d.srv.Restart(t)
	back := time.Now()
	v := alice.status(t).ConfigVersion
	if _, err := d.admin.SetConfig(context.Background(), api.ScopeDevice, alice.id, d.fleetPhoneDoc("alice", "12s")); err != nil {
		t.Fatalf("config set after the restart: %v", err)
	}
	alice.waitStatus(t, 60*time.Second, "alice fresh again on the new document", func(st *control.Status) bool {
		ps := st.Provisioning
		return !ps.Stale && ps.ConfigVersion > v && ps.GoodVersion == ps.ConfigVersion && registered(st)
	})
	t.Logf("hpfleet back: alice runs the next document with fresh metadata %v later", time.Since(back).Round(time.Millisecond))
	d.reportedBy(t, alice.id, "fresh metadata and the new document", 60*time.Second, func(ps *api.Provisioning) bool {
		return !ps.Stale && ps.ConfigVersion > v
	})
}

// TestFleetRotationDuringCall is "password rotation during a call": alice
// is in a call with bob when the director rotates her account's password
// (hpfleet seals a new one to her TPM, writes the registrar's row keeping
// the old one valid, publishes a new document and sends check-sync). The
// call must not drop: media flows both ways for seconds after alice opened
// the new password, and she re-registers with it meanwhile; the fleet
// keeps the old password until alice's check-in confirms the new
// document, and alice still registers once the old one is gone.
func TestFleetRotationDuringCall(t *testing.T) {
	d := newDirectorFleetWith(t, directorOptions{kamailio: []test.KamailioOption{test.KamailioMinExpires(10)}})
	alice := d.startDirectorPhone(t, "alice", "HP1-000030")
	bob := d.startDirectorPhone(t, "bob", "HP1-000031")
	ctx := context.Background()
	v1 := alice.status(t).ConfigVersion

	c := dial(t, d, alice, bob)
	c.flowing(t, 50, 10*time.Second)
	const opened = `"msg":"sealed password opened into the credential store"`
	openedBefore := strings.Count(readFile(alice.proc.log), opened)
	if _, err := d.admin.Rotate(ctx, alice.id); err != nil {
		t.Fatalf("rotate: %v", err)
	}
	rotated := time.Now()
	// Alice opened the new password into her credential store: the
	// document that carries it is hers.
	waitFor(t, 30*time.Second, func() bool { return strings.Count(readFile(alice.proc.log), opened) > openedBefore })
	t.Logf("rotation to alice holding the new password: %v", time.Since(rotated).Round(time.Millisecond))
	// The document is hers, applied; she starts on it when the call ends.
	if ps := alice.status(t); ps.PendingVersion <= v1 || ps.ConfigVersion != v1 {
		t.Fatalf("alice during the call: %+v, want v%d running and the rotated document pending", ps, v1)
	}
	regs := alice.account(t).Counters

	// The call stays up, media both ways, for five seconds' worth of
	// packets (50 a second at 20 ms).
	aGot, bGot := c.flowing(t, 250, 20*time.Second)
	// Alice re-registered meanwhile, with the only password her store
	// holds now: the new one.
	waitFor(t, 20*time.Second, func() bool {
		a := alice.account(t)
		return a.Registered && a.Counters.Registrations > regs.Registrations
	})
	if a := alice.account(t); a.Counters.RegisterFailures != regs.RegisterFailures {
		t.Fatalf("alice's register failures during the call: %d -> %d", regs.RegisterFailures, a.Counters.RegisterFailures)
	}
	// The old password stays valid at the registrar until alice
	// confirms the document.
	ps, err := d.admin.Provision(ctx, alice.id)
	if err != nil || len(ps.Accounts) != 1 || ps.Accounts[0].Generation != 2 {
		t.Fatalf("provision status during the call: %+v, %v; want generation 2", ps, err)
	}
	if ps.ReportedConfigVersion < ps.Accounts[0].SealedVersion && !ps.Accounts[0].PreviousValid {
		t.Fatalf("provision status %+v: the old password dropped before alice confirmed the new one", ps)
	}
	t.Logf("after the rotation the call carried %d packets to alice and %d to bob (DTLS-SRTP), alice re-registered %d times",
		aGot, bGot, alice.account(t).Counters.Registrations-regs.Registrations)
	c.hangup(t)

	// Alice runs the new document, proven; the fleet drops the old
	// password once her check-in reports it.
	alice.waitStatus(t, 60*time.Second, "alice on the rotated document", func(st *control.Status) bool {
		ps := st.Provisioning
		return ps.ConfigVersion > v1 && ps.GoodVersion == ps.ConfigVersion && ps.PendingVersion == 0 && registered(st)
	})
	waitFor(t, 60*time.Second, func() bool {
		ps, err = d.admin.Provision(ctx, alice.id)
		return err == nil && len(ps.Accounts) == 1 && ps.Accounts[0].Generation == 2 && !ps.Accounts[0].PreviousValid
	})
	if ps.ReportedConfigVersion < ps.Accounts[0].SealedVersion {
		t.Fatalf("provision status %+v: the old password dropped before alice confirmed the new one", ps)
	}
	// With only the new password at the registrar, alice still
	// re-registers.
	regs = alice.account(t).Counters
	waitFor(t, 20*time.Second, func() bool {
		a := alice.account(t)
		return a.Registered && a.Counters.Registrations >= regs.Registrations+2
	})
	if a := alice.account(t); a.Counters.RegisterFailures != regs.RegisterFailures {
		t.Fatalf("alice's register failures with the new password alone: %d -> %d", regs.RegisterFailures, a.Counters.RegisterFailures)
	}
}
