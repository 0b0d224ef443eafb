package qemu

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/fleet/adminauth"
	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/audit"
	"github.com/hardphone/hardphone/fleet/ca"
	"github.com/hardphone/hardphone/fleet/client/clienttest"
	"github.com/hardphone/hardphone/fleet/rollout/rollouttest"
	"github.com/hardphone/hardphone/hal/tpm"
	"github.com/hardphone/hardphone/test"
)

// adminUA is the User-Agent the admins' sessions are bound to (hpfleet
// binds a session to the client's network and agent).
const adminUA = "hpctl-qemu/1"

// TestFleetRolloutCrashLoop is issue 13's "a bundle that crash-loops on
// the canary halts the rollout before ring 2" on the emulated phone: a
// zero-touch phone of group lab enrols, registers and is marked good in
// slot A; a second phone of the group (simulated: its own swtpm, enrolled
// and reporting through the fleet protocol) makes up ring 2. hpfleet runs
// the director, the audit log and staged rollouts, so every admin call
// carries a session. One operator starts a firmware rollout of a signed
// bundle whose agent exits at once (canary: the emulated phone; ring 2:
// the rest of the group) and a second operator approves it. The phone
// downloads the bundle from the image repository, installs it into B and
// PID 1 reboots into it; B's agent exits on every try until U-Boot's boot
// count runs out and A boots again, registers, is marked good and reports
// B bad. The rollout halts on the canary ("rolled back"), ring 2 never
// starts (the second phone is never named the bundle), and an operator's
// abort takes the canary's assignment back; the phone keeps running A.
//
// It is in `make test`'s QEMU slice: issue 13's rollouts over a real agent.
func TestFleetRolloutCrashLoop(t *testing.T) {
	f := getFixture(t)
	dir := t.TempDir()
	ctx := context.Background()

	// The bundle: version 2-crash, signed by the vendor, listed by the
	// image repository. Its agent's config names a CA file the image does
	// not have, so the agent exits on every start.
	rp := newRepos(t, f, dir)
	const target = "hardphone-2-crash.raucb"
	rp.add(t, f, f.bundle(t, "crash", "2-crash", "2", configFor(guestRegistrar+":5061", "/etc/hardphone/no-such-ca.pem"), nil), target)

	// hpfleet with its audit key (which turns staged rollouts and admin
	// sessions on) and three admins made in its store before it starts.
	fl := newFleet(t, dir)
	auditKey := filepath.Join(dir, "audit.key")
	if _, err := audit.WriteKeyFiles(auditKey, auditKey+".pub", fleetName+"/audit"); err != nil {
		t.Fatal(err)
	}
	tokens := clienttest.Sessions(t, filepath.Join(dir, "fleet-data"), map[string]adminauth.Role{
		"admin": adminauth.RoleSecurityAdmin, "olivia": adminauth.RoleOperator, "oscar": adminauth.RoleOperator}, adminUA)
	k := test.StartKamailio(t, test.KamailioPKI(f.pki), test.KamailioCert(f.regCert, f.regKey),
		test.KamailioCA(filepath.Join(fl.pki, ca.DeviceCACertFile)), test.KamailioDeviceUsers(),
		test.KamailioUsers(map[string]string{sipUser: f.password}), test.KamailioDigestAlgorithm("SHA-256"))
	fl.start(t, dir, append(rp.hpfleetArgs(), "--audit-key", auditKey, "--rollout-interval", "1s")...)
	admins := clienttest.Clients(t, fl.srv.URL, fleetName, fl.pki, fl.admin, tokens, adminUA)
	fl.admin = admins["admin"] // the allow-list imports below need a session too
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- hpfleet ---\n%s", fl.srv.LogTail())
		}
	})

	// The canary: the factory's phone, image version 1 pinning both
	// repositories. Ring 2: a simulated phone of the same group.
	other := simulatedPhone(t, fl, rp, "QEMU-SIM-0001")
	vm, id, start := f.bootFleetPhone(t, dir, fl, rp, "QEMU-000003")
	k.SetDeviceUser(t, id, sipUser)
	wantField(t, vm.WaitMarker(t, "registered", bootTimeout), "credentials", "tpm")
	wantField(t, vm.WaitMarker(t, "marked-good", bootTimeout), "slot", "A")
	waitFleet(t, fl, "a check-in from the marked-good phone", func() bool {
		d, err := fl.admin.Device(ctx, id)
		return err == nil && len(d.Reports) > 0 && d.Reports[0].Report.Boot.MarkedGood
	})
	t.Logf("canary enrolled, registered and reported marked good %v after QEMU started", time.Since(start).Round(time.Millisecond))

	// The rollout: one operator starts it, another approves it.
	v, err := admins["olivia"].CreateRollout(ctx, api.RolloutRequest{Kind: "firmware", Group: "lab", Firmware: target,
		Rings:    []api.RolloutRing{{Name: "canary", Devices: []string{id}}, {Name: "rest", Percent: 100}},
		Deadline: "10m", ReportTimeout: "5m"})
	if err != nil {
		t.Fatalf("CreateRollout: %v", err)
	}
	if v.State != "pending" || len(v.Rings) != 2 || v.Rings[0].Devices != 1 || v.Rings[1].Devices != 1 {
		t.Fatalf("CreateRollout = %+v, want pending, the canary and one phone in ring 2", v)
	}
	if _, err := admins["olivia"].ApproveRollout(ctx, v.ID); !api.IsCode(err, api.CodeConflict) {
		t.Fatalf("ApproveRollout by its creator = %v, want a conflict", err)
	}
	approved := time.Now()
	if _, err := admins["oscar"].ApproveRollout(ctx, v.ID); err != nil {
		t.Fatalf("ApproveRollout: %v", err)
	}

	// The canary installs the bundle and PID 1 reboots into B, which
	// crash-loops until U-Boot falls back to A.
	vm.WaitLine(t, `msg="boot order switched; reboot to try the new slot"`, installTimeout)
	wantField(t, vm.WaitMarker(t, "reboot", bootTimeout), "reason", "fleet-update")
	if b, err := os.ReadFile(rp.ngx.AccessLog); err != nil || !strings.Contains(string(b), "."+target+" 200 ") {
		t.Fatalf("nginx access log (%v): no download of %s:\n%s", err, target, b)
	}
	for try := 1; try <= attempts; try++ {
		vm.WaitLine(t, "HPBOOT boot slot=B", bootTimeout)
		u := vm.WaitMarker(t, "unhealthy", 2*bootTimeout)
		if r := u.Fields["reason"]; !strings.Contains(r, "agent exited") {
			t.Fatalf("try %d: unhealthy reason %q, want the agent exited", try, r)
		}
		vm.WaitLine(t, "softdog: Initiating system reboot", bootTimeout)
	}
	vm.WaitLine(t, "HPBOOT boot slot=A", bootTimeout)
	ms := vm.WaitMarkers(t, bootTimeout, "rollback", "registered", "marked-good")
	wantField(t, ms["rollback"], "slot", "A")
	fellBack := time.Since(approved)

	// The phone's report halts the rollout on the canary.
	var halted *api.Rollout
	waitFleet(t, fl, "the rollout halted", func() bool {
		halted, err = admins["oscar"].Rollout(ctx, v.ID)
		if err == nil && halted.State == "completed" {
			t.Fatalf("the crash-looping rollout completed: %+v", halted)
		}
		return err == nil && halted.State == "halted"
	})
	haltedAt := time.Since(approved)
	h := halted.Halt
	if h == nil || h.By != "system" || h.Ring != "canary" || len(h.Failures) != 1 || h.Failures[0].Device != id ||
		!strings.HasPrefix(h.Failures[0].Reason, "rolled back") {
		t.Fatalf("halt = %+v, want the system halting ring canary on %s, rolled back", h, id)
	}
	if !halted.Rings[1].StartedAt.IsZero() || halted.Rings[1].Done+halted.Rings[1].Updating+halted.Rings[1].Failed != 0 {
		t.Fatalf("rings = %+v, want ring 2 never started", halted.Rings)
	}
	if got := other.Firmware(); got != "" {
		t.Fatalf("the ring-2 phone is named firmware %q, want none", got)
	}
	t.Logf("halt: ring %s, %s: %s", h.Ring, h.Failures[0].Device, h.Failures[0].Reason)

	// The abort takes the canary's assignment back (the group had no
	// firmware before); the phone stays on A, good.
	if _, err := admins["olivia"].AbortRollout(ctx, v.ID, "2-crash crash-loops"); err != nil {
		t.Fatalf("AbortRollout: %v", err)
	}
	waitFleet(t, fl, "the rollout aborted with the canary reverted", func() bool {
		a, err := admins["oscar"].Rollout(ctx, v.ID)
		return err == nil && a.State == "aborted" && a.Rings[0].Reverted == 1
	})
	waitFleet(t, fl, "a report from A, marked good, with B bad", func() bool {
		d, err := fl.admin.Device(ctx, id)
		if err != nil || len(d.Reports) == 0 {
			return false
		}
		r := d.Reports[0].Report
		return r.Boot.Slot == "A" && r.Boot.MarkedGood && r.Firmware.Version != "2-crash" &&
			slices.ContainsFunc(r.Slots, func(s api.Slot) bool { return s.Name == "B" && s.Version == "2-crash" && s.Bad })
	})
	vm.Kill(t)
	t.Logf("timeline:\n%s", vm.Timeline())
	t.Logf("approval -> back on A after %d crashed tries of B: %v; -> rollout halted: %v; scenario %v",
		attempts, fellBack.Round(time.Millisecond), haltedAt.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// simulatedPhone enrols a simulated phone of group lab (its own swtpm with
// the manufacturer's EK certificate) that follows the same repositories.
func simulatedPhone(t *testing.T, fl *fleet, rp *repos, serial string) *rollouttest.Phone {
	t.Helper()
	sw := test.StartSWTPM(t, test.SWTPMWithEK(fl.mfg))
	tp, err := tpm.Open(sw.Spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tp.Close() })
	roots, err := ca.LoadPool(filepath.Join(fl.pki, ca.ServerCACertFile))
	if err != nil {
		t.Fatal(err)
	}
	devCA, err := ca.LoadCertificate(filepath.Join(fl.pki, ca.DeviceCACertFile))
	if err != nil {
		t.Fatal(err)
	}
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return rollouttest.New(t, rollouttest.Config{URL: fl.srv.URL, ServerName: fleetName, Roots: roots, DeviceCA: devCA,
		TPM: tp, EKCert: sw.EKCertECCP256, Admin: fl.admin, Group: "lab", Serial: serial, Model: "qemu-arm64",
		ImageURL: rp.ngx.URL + "/image/public/", ImageRoot: read(rp.imageRoot), DirectorRoot: read(rp.dirRoot),
		Compatible: "hardphone-qemu-arm64", Clock: time.Now})
}
