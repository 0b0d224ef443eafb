package rollout_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/fleet/adminauth"
	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/audit"
	"github.com/hardphone/hardphone/fleet/client"
	"github.com/hardphone/hardphone/fleet/tufrepo"
)

// tick advances the rollouts once, as hpfleet's loop does.
func (w *world) tick() {
	w.t.Helper()
	if err := w.engine.Tick(ctx); err != nil {
		w.t.Fatalf("Tick: %v", err)
	}
}

func (w *world) show(id string) *api.Rollout {
	w.t.Helper()
	v, err := w.admins["admin"].Rollout(ctx, id)
	if err != nil {
		w.t.Fatalf("Rollout(%s): %v", id, err)
	}
	return v
}

// wantCode fails unless err is an API refusal with code c.
func wantCode(t *testing.T, what string, err error, c api.Code) {
	t.Helper()
	if !api.IsCode(err, c) {
		t.Fatalf("%s = %v, want a %s refusal", what, err, c)
	}
}

// firmwareOf is the version the director names for the phone ("" none).
func firmwareOf(t *testing.T, p *phone) string {
	t.Helper()
	return p.Firmware()
}

// drive runs check-in cycles (the phones follow, the engine ticks) until
// the rollout leaves the states in `while`, at most n cycles.
func (w *world) drive(id string, phones map[*phone]behaviour, n int, while ...string) *api.Rollout {
	w.t.Helper()
	for i := 0; i < n; i++ {
		w.tick()
		v := w.show(id)
		still := false
		for _, s := range while {
			still = still || v.State == s
		}
		if !still {
			return v
		}
		for p, b := range phones {
			p.Follow(b)
		}
	}
	v := w.show(id)
	w.t.Fatalf("rollout %s still %s after %d cycles: %+v", id, v.State, n, v)
	return nil
}

func canary(p *phone) api.RolloutRing {
	return api.RolloutRing{Name: "canary", Devices: []string{p.ID}}
}

// TestFirmwareRollout: three rings over simulated phones (their own TPMs,
// real director metadata, signed reports), on bbolt and PostgreSQL: the
// second ring starts only when the canary reported the bundle booted and
// marked good; a second person approves; a bundle that crash-loops on
// the canary halts the next rollout before ring 2, naming the phone, and
// an abort points the canary back at the previous bundle. Every
// transition is in the audit log, which verifies, and an edit or a
// truncation of it is named.
func TestFirmwareRollout(t *testing.T) {
	if testing.Short() {
		t.Skip("short: real servers end to end; make test runs it")
	}
	for _, backend := range []string{"bbolt", "postgres"} {
		t.Run(backend, func(t *testing.T) { testFirmwareRollout(t, backend) })
	}
}

func testFirmwareRollout(t *testing.T, backend string) {
	w := newWorld(t, worldOpts{backend: backend})
	olivia := w.admin("olivia", adminauth.RoleOperator)
	alice := w.admin("alice", adminauth.RoleOperator)
	vera := w.admin("vera", adminauth.RoleViewer)
	audrey := w.admin("audrey", adminauth.RoleAuditor)
	var phones []*phone
	for i := 0; i < 5; i++ {
		phones = append(phones, w.newPhone("floor-1"))
	}
	req := api.RolloutRequest{Kind: "firmware", Group: "floor-1", Firmware: "hardphone-2.0.0.raucb",
		Rings:    []api.RolloutRing{canary(phones[0]), {Name: "half", Percent: 50}, {Name: "all", Percent: 100}},
		Deadline: "30m", ReportTimeout: "20m"}

	// Refusals: a viewer may not start one.
	_, err := vera.CreateRollout(ctx, req)
	wantCode(t, "CreateRollout(viewer)", err, api.CodeForbidden)
	v, err := olivia.CreateRollout(ctx, req)
	if err != nil {
		t.Fatalf("CreateRollout: %v", err)
	}
	if v.State != "pending" || len(v.Rings) != 3 || v.Rings[0].Devices != 1 || v.Rings[1].Devices != 2 || v.Rings[2].Devices != 2 {
		t.Fatalf("CreateRollout = %+v, want pending with rings of 1, 2 and 2 devices", v)
	}
	// Nothing moves before a second admin approves: not its creator, not
	// a viewer.
	w.tick()
	if got := firmwareOf(t, phones[0]); got != "" {
		t.Fatalf("canary names firmware %q before approval, want none", got)
	}
	_, err = olivia.ApproveRollout(ctx, v.ID)
	wantCode(t, "ApproveRollout(its creator)", err, api.CodeConflict)
	_, err = vera.ApproveRollout(ctx, v.ID)
	wantCode(t, "ApproveRollout(viewer)", err, api.CodeForbidden)
	_, err = olivia.CreateRollout(ctx, req)
	wantCode(t, "CreateRollout(second in the group)", err, api.CodeConflict)

	start := time.Now()
	if v, err = alice.ApproveRollout(ctx, v.ID); err != nil {
		t.Fatalf("ApproveRollout: %v", err)
	}
	if v.State != "running" || v.CurrentRing != "canary" {
		t.Fatalf("approved rollout = %s ring %q, want running the canary", v.State, v.CurrentRing)
	}
	// Only the canary is told.
	if got := firmwareOf(t, phones[0]); got != "2.0.0" {
		t.Fatalf("canary names firmware %q, want 2.0.0", got)
	}
	for _, p := range phones[1:] {
		if got := firmwareOf(t, p); got != "" {
			t.Fatalf("phone %s outside the canary names firmware %q, want none", p.ID, got)
		}
	}
	// The canary installs: ring 2 waits until it reports marked good.
	phones[0].Follow(slowToBoot)
	w.tick()
	if v = w.show(v.ID); v.CurrentRing != "canary" || v.Rings[0].Updating != 1 {
		t.Fatalf("after an install without a boot: ring %s %+v, want the canary still updating", v.CurrentRing, v.Rings[0])
	}
	all := map[*phone]behaviour{}
	for _, p := range phones {
		all[p] = healthy
	}
	v = w.drive(v.ID, all, 12, "running", "completing")
	took := time.Since(start)
	if v.State != "completed" {
		t.Fatalf("rollout = %s (%+v), want completed", v.State, v.Halt)
	}
	for i, r := range v.Rings {
		if r.Done != r.Devices || r.Failed != 0 {
			t.Fatalf("ring %d = %+v, want every device done", i, r)
		}
	}
	a, err := w.admins["admin"].Config(ctx, "group", "floor-1")
	if err != nil || a.Firmware == nil || a.Firmware.Version != "2.0.0" {
		t.Fatalf("group floor-1's firmware after completion = %+v, %v; want 2.0.0", a, err)
	}
	t.Logf("3-ring rollout over %d simulated phones (%s): %v from approval to completed", len(phones), backend, took)

	// A bundle that crash-loops on the canary halts the rollout before
	// ring 2.
	v2, err := olivia.CreateRollout(ctx, api.RolloutRequest{Kind: "firmware", Group: "floor-1", Firmware: "hardphone-3.0.0.raucb",
		Rings: []api.RolloutRing{canary(phones[1]), {Name: "all", Percent: 100}}, Deadline: "30m", ReportTimeout: "20m"})
	if err != nil {
		t.Fatalf("CreateRollout(3.0.0): %v", err)
	}
	if _, err := alice.ApproveRollout(ctx, v2.ID); err != nil {
		t.Fatalf("ApproveRollout(3.0.0): %v", err)
	}
	rest := map[*phone]behaviour{phones[1]: crashLoop}
	v2 = w.drive(v2.ID, rest, 6, "running")
	if v2.State != "halted" || v2.Halt == nil || v2.Halt.By != "system" || v2.Halt.Ring != "canary" || len(v2.Halt.Failures) != 1 ||
		v2.Halt.Failures[0].Device != phones[1].ID || !strings.HasPrefix(v2.Halt.Failures[0].Reason, "rolled back") {
		t.Fatalf("rollout of a crash-looping bundle = %s %+v, want halted by the system naming the canary rolled back", v2.State, v2.Halt)
	}
	if v2.Rings[1].StartedAt != (time.Time{}) {
		t.Fatalf("ring 2 started at %v, want never", v2.Rings[1].StartedAt)
	}
	for _, p := range []*phone{phones[0], phones[2]} {
		if got := firmwareOf(t, p); got != "2.0.0" {
			t.Fatalf("phone %s outside the canary names %q, want 2.0.0 still", p.ID, got)
		}
	}
	// Only an operator may abort; the abort points the canary back at
	// the previous bundle.
	_, err = vera.AbortRollout(ctx, v2.ID, "no")
	wantCode(t, "AbortRollout(viewer)", err, api.CodeForbidden)
	if got := firmwareOf(t, phones[1]); got != "3.0.0" {
		t.Fatalf("canary names %q before the abort, want 3.0.0", got)
	}
	if v2, err = olivia.AbortRollout(ctx, v2.ID, "3.0.0 crash-loops"); err != nil {
		t.Fatalf("AbortRollout: %v", err)
	}
	w.tick()
	if v2 = w.show(v2.ID); v2.State != "aborted" || v2.Rings[0].Reverted != 1 {
		t.Fatalf("aborted rollout = %s %+v, want aborted with the canary reverted", v2.State, v2.Rings[0])
	}
	if got := firmwareOf(t, phones[1]); got != "2.0.0" {
		t.Fatalf("canary names %q after the abort, want the previous bundle 2.0.0", got)
	}

	// The audit trail: every transition, in order; an auditor exports it
	// (a viewer may not) and it verifies; an edited entry and a cut tail
	// are named.
	var buf bytes.Buffer
	_, err = vera.ExportAudit(ctx, &buf, 1<<30)
	wantCode(t, "ExportAudit(viewer)", err, api.CodeForbidden)
	buf.Reset()
	if _, err := audrey.ExportAudit(ctx, &buf, 1<<30); err != nil {
		t.Fatalf("ExportAudit: %v", err)
	}
	export := buf.Bytes()
	rep, err := audit.Verify(bytes.NewReader(export), w.auditL.Trust())
	if err != nil || !rep.OK() {
		t.Fatalf("Verify(export) = %v, %v; want OK", rep, err)
	}
	for _, want := range []string{`"rollout.create"`, `"approval.grant"`, `"rollout.start"`, `"rollout.ring_start"`, `"rollout.ring_done"`,
		`"rollout.complete"`, `"rollout.halt"`, `"rollout.abort"`, `"rollout.aborted"`, `"access.denied"`, `"audit.export"`} {
		if !bytes.Contains(export, []byte(want)) {
			t.Fatalf("audit export lacks %s", want)
		}
	}
	checkTamper(t, w, export)
}

// checkTamper edits one entry and cuts the tail of an export: Verify
// names both (the cut against the checkpoint a collector kept).
func checkTamper(t *testing.T, w *world, export []byte) {
	t.Helper()
	lines := bytes.Split(bytes.TrimSuffix(export, []byte("\n")), []byte("\n"))
	edited := make([][]byte, len(lines))
	copy(edited, lines)
	done := false
	for i, l := range edited {
		if bytes.Contains(l, []byte(`"rollout.halt"`)) {
			edited[i] = bytes.Replace(l, []byte(`"system"`), []byte(`"alice"`), 1)
			done = !bytes.Equal(edited[i], l)
			break
		}
	}
	if !done {
		t.Fatalf("no halt entry to edit in the export")
	}
	rep, err := audit.Verify(bytes.NewReader(bytes.Join(edited, []byte("\n"))), w.auditL.Trust())
	if err != nil || rep.OK() {
		t.Fatalf("Verify(edited) = %v, %v; want a problem named", rep, err)
	}
	// The collector's copy: the latest checkpoint, as syslog carried it.
	cp, err := w.auditL.LatestCheckpoint(ctx)
	if err != nil {
		t.Fatalf("LatestCheckpoint: %v", err)
	}
	msg, err := audit.FormatSyslog(cp, "fleet", time.Now())
	if err != nil {
		t.Fatalf("FormatSyslog: %v", err)
	}
	notes, err := audit.ParseSyslogCheckpoints(bytes.NewReader(msg))
	if err != nil || len(notes) != 1 {
		t.Fatalf("ParseSyslogCheckpoints = %d, %v", len(notes), err)
	}
	// Cut the last five lines (entries and the checkpoints after them).
	cut := bytes.Join(lines[:len(lines)-5], []byte("\n"))
	rep, err = audit.Verify(bytes.NewReader(cut), w.auditL.Trust(), audit.WithOutsideCheckpoints(notes...))
	if err == nil && rep.OK() {
		t.Fatalf("Verify(truncated, with the collector's checkpoint) = OK, want the cut named")
	}
}

// TestConfigRollout: a configuration document that breaks registration
// (the canary reverts it by itself) halts the rollout before ring 2; a
// document that changes the security policy (auto-answer, a registrar) is a security admin's to
// start and another security admin's to approve, and cannot be set
// directly.
func TestConfigRollout(t *testing.T) {
	w := newWorld(t, worldOpts{backend: "bbolt"})
	olivia := w.admin("olivia", adminauth.RoleOperator)
	alice := w.admin("alice", adminauth.RoleOperator)
	sam := w.admin("sam", adminauth.RoleSecurityAdmin)
	sue := w.admin("sue", adminauth.RoleSecurityAdmin)
	var phones []*phone
	for i := 0; i < 3; i++ {
		phones = append(phones, w.newPhone("floor-2"))
	}
	base := "[media]\nrtp_port_min = 20000\nrtp_port_max = 20099\n[[account]]\nname = \"line1\"\nuser = \"1001\"\nregistrar = \"sip.example.test:5061\"\npassword_cred = \"sip/line1\"\n"
	// The first document names the account's registrar: where its calls
	// go, so a policy change (a security admin's, approved by another).
	_, err := w.admins["admin"].SetConfig(ctx, "group", "floor-2", []byte(base))
	wantCode(t, "SetConfig(a trust anchor, directly)", err, api.CodeConflict)
	first, err := sam.CreateRollout(ctx, api.RolloutRequest{Kind: "config", Group: "floor-2", Config: base,
		Rings: []api.RolloutRing{{Name: "all", Percent: 100}}, Deadline: "30m", ReportTimeout: "20m"})
	if err != nil {
		t.Fatalf("CreateRollout(first document): %v", err)
	}
	if _, err := sue.ApproveRollout(ctx, first.ID); err != nil {
		t.Fatalf("ApproveRollout(first document): %v", err)
	}
	all := map[*phone]behaviour{phones[0]: healthy, phones[1]: healthy, phones[2]: healthy}
	if first = w.drive(first.ID, all, 6, "running", "completing"); first.State != "completed" {
		t.Fatalf("first document's rollout = %s %+v, want completed", first.State, first.Halt)
	}
	broken := strings.Replace(base, "20099", "20199", 1)
	v, err := olivia.CreateRollout(ctx, api.RolloutRequest{Kind: "config", Group: "floor-2", Config: broken,
		Rings: []api.RolloutRing{canary(phones[0]), {Name: "all", Percent: 100}}, Deadline: "30m", ReportTimeout: "20m"})
	if err != nil {
		t.Fatalf("CreateRollout(config): %v", err)
	}
	if _, err := alice.ApproveRollout(ctx, v.ID); err != nil {
		t.Fatalf("ApproveRollout: %v", err)
	}
	v = w.drive(v.ID, map[*phone]behaviour{phones[0]: breaksSIP, phones[1]: healthy, phones[2]: healthy}, 6, "running")
	if v.State != "halted" || v.Halt == nil || len(v.Halt.Failures) != 1 || v.Halt.Failures[0].Device != phones[0].ID ||
		!strings.HasPrefix(v.Halt.Failures[0].Reason, "configuration reverted") {
		t.Fatalf("config rollout = %s %+v, want halted naming the canary's revert", v.State, v.Halt)
	}
	if v.Rings[1].StartedAt != (time.Time{}) {
		t.Fatalf("ring 2 started, want never")
	}
	if _, err := olivia.AbortRollout(ctx, v.ID, "breaks registration"); err != nil {
		t.Fatalf("AbortRollout: %v", err)
	}
	w.tick()

	// A policy change: the account answers by itself.
	policy := base + "answer = \"auto\"\n"
	_, err = w.admins["admin"].SetConfig(ctx, "group", "floor-2", []byte(policy))
	wantCode(t, "SetConfig(auto-answer, directly)", err, api.CodeConflict)
	req := api.RolloutRequest{Kind: "config", Group: "floor-2", Config: policy, Rings: []api.RolloutRing{{Name: "all", Percent: 100}},
		Deadline: "30m", ReportTimeout: "20m"}
	_, err = olivia.CreateRollout(ctx, req)
	wantCode(t, "CreateRollout(policy change, operator)", err, api.CodeForbidden)
	v, err = sam.CreateRollout(ctx, req)
	if err != nil {
		t.Fatalf("CreateRollout(policy change, security admin): %v", err)
	}
	if len(v.PolicyChange) == 0 {
		t.Fatalf("policy rollout = %+v, want its policy change named", v)
	}
	_, err = alice.ApproveRollout(ctx, v.ID)
	wantCode(t, "ApproveRollout(policy change, operator)", err, api.CodeForbidden)
	_, err = sam.ApproveRollout(ctx, v.ID)
	wantCode(t, "ApproveRollout(policy change, its creator)", err, api.CodeConflict)
	if _, err := sue.ApproveRollout(ctx, v.ID); err != nil {
		t.Fatalf("ApproveRollout(policy change, second security admin): %v", err)
	}
	v = w.drive(v.ID, all, 6, "running", "completing")
	if v.State != "completed" {
		t.Fatalf("policy rollout = %s %+v, want completed", v.State, v.Halt)
	}
}

// TestRolloutDeadlines: a phone that never marks the bundle good within
// the deadline, and one that stops reporting, fail their ring; with a
// threshold of 50% one failure of two halts nothing, two do; an
// operator's resume accepts the failures seen.
func TestRolloutDeadlines(t *testing.T) {
	w := newWorld(t, worldOpts{backend: "bbolt"})
	olivia := w.admin("olivia", adminauth.RoleOperator)
	alice := w.admin("alice", adminauth.RoleOperator)
	var phones []*phone
	for i := 0; i < 4; i++ {
		phones = append(phones, w.newPhone("floor-3"))
	}
	v, err := olivia.CreateRollout(ctx, api.RolloutRequest{Kind: "firmware", Group: "floor-3", Firmware: "hardphone-2.0.0.raucb",
		Rings:             []api.RolloutRing{{Name: "first", Devices: []string{phones[0].ID, phones[1].ID}}, {Name: "all", Percent: 100}},
		MaxFailurePercent: 50, Deadline: "10m", ReportTimeout: "5m"})
	if err != nil {
		t.Fatalf("CreateRollout: %v", err)
	}
	if _, err := alice.ApproveRollout(ctx, v.ID); err != nil {
		t.Fatalf("ApproveRollout: %v", err)
	}
	// phones[0] installs but never boots it; phones[1] falls silent.
	phones[0].Follow(slowToBoot)
	w.clock.Add(6 * time.Minute)
	phones[0].Report()
	w.tick()
	v = w.show(v.ID)
	if v.State != "running" || v.Rings[0].Failed != 1 {
		t.Fatalf("after 6 minutes = %s %+v, want running with the silent phone failed (1 of 2 is within 50%%)", v.State, v.Rings[0])
	}
	w.clock.Add(5 * time.Minute)
	phones[0].Report()
	w.tick()
	v = w.show(v.ID)
	if v.State != "halted" || len(v.Halt.Failures) != 2 {
		t.Fatalf("after the deadline = %s %+v, want halted with two failures", v.State, v.Halt)
	}
	reasons := v.Halt.Failures[0].Reason + " | " + v.Halt.Failures[1].Reason
	if !strings.Contains(reasons, "stopped reporting") || !strings.Contains(reasons, "not marked good within 10m0s") {
		t.Fatalf("halt reasons = %q, want stopped reporting and the deadline", reasons)
	}
	// The operator looked and resumes: the next ring starts.
	if v, err = olivia.ResumeRollout(ctx, v.ID, "lab phones, known"); err != nil {
		t.Fatalf("ResumeRollout: %v", err)
	}
	if v.State != "running" || v.CurrentRing != "all" {
		t.Fatalf("resumed = %s ring %s, want running ring all", v.State, v.CurrentRing)
	}
	_, err = w.admin("vic", adminauth.RoleViewer).ResumeRollout(ctx, v.ID, "")
	wantCode(t, "ResumeRollout(viewer)", err, api.CodeForbidden)
}

// signAll fetches a rollout's staged targets and signs every device's with
// key as hpctl fleet approve does (without its checks, which the hpctl
// tests cover), returning the upload.
func signAll(t *testing.T, c *client.Client, id string, key *tufrepo.Key) api.SignatureUpload {
	t.Helper()
	sign := func(b []byte) []byte {
		s, err := tufrepo.SignDetached(b, key)
		if err != nil {
			t.Fatalf("SignDetached: %v", err)
		}
		return s.Sig
	}
	up := api.SignatureUpload{KeyID: key.ID()}
	after := ""
	for {
		pg, err := c.Staged(ctx, id, after)
		if err != nil {
			t.Fatalf("Staged: %v", err)
		}
		for _, d := range pg.Devices {
			if d.Unchanged {
				continue
			}
			up.Devices = append(up.Devices, api.DeviceSignatures{Device: d.Device, Forward: sign(d.Forward.Targets), Revert: sign(d.Revert.Targets)})
		}
		if pg.Next == "" {
			return up
		}
		after = pg.Next
	}
}

// TestRolloutWindow: a rollout with a maintenance window releases phones
// only inside the window (in the phones' time zone): approved outside it,
// no ring starts and no phone is named the bundle across check-ins; once
// the fleet's clock enters the window the rings start and it completes.
func TestRolloutWindow(t *testing.T) {
	if testing.Short() {
		t.Skip("short: real servers end to end; make test runs it")
	}
	w := newWorld(t, worldOpts{backend: "bbolt"})
	olivia := w.admin("olivia", adminauth.RoleOperator)
	alice := w.admin("alice", adminauth.RoleOperator)
	phones := []*phone{w.newPhone("floor-3"), w.newPhone("floor-3")}
	// The window: the hour that begins between one and two hours from
	// now, in a zone with no daylight saving (the phones' local time).
	loc, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	opens := w.clock.Now().Add(2 * time.Hour).In(loc).Truncate(time.Hour)
	window := fmt.Sprintf("%s %02d:00-%02d:00 Asia/Tokyo", opens.Weekday().String()[:3], opens.Hour(), opens.Hour()+1)
	v, err := olivia.CreateRollout(ctx, api.RolloutRequest{Kind: "firmware", Group: "floor-3", Firmware: "hardphone-2.0.0.raucb",
		Rings: []api.RolloutRing{canary(phones[0]), {Name: "all", Percent: 100}}, Deadline: "30m", ReportTimeout: "20m", Window: window})
	if err != nil {
		t.Fatalf("CreateRollout(window %q): %v", window, err)
	}
	if _, err := alice.ApproveRollout(ctx, v.ID); err != nil {
		t.Fatalf("ApproveRollout: %v", err)
	}
	both := map[*phone]behaviour{phones[0]: healthy, phones[1]: healthy}
	for i := 0; i < 4; i++ {
		w.tick()
		for p, b := range both {
			p.Follow(b)
		}
	}
	v = w.show(v.ID)
	if v.State != "running" || v.CurrentRing != "" || !v.Rings[0].StartedAt.IsZero() || !v.Rings[1].StartedAt.IsZero() {
		t.Fatalf("outside the window %q: %s ring %q %+v, want running with no ring started", window, v.State, v.CurrentRing, v.Rings)
	}
	for _, p := range phones {
		if got := firmwareOf(t, p); got != "" {
			t.Fatalf("phone %s names %q outside the window, want none", p.ID, got)
		}
	}
	// Into the window: the rings start and the rollout completes.
	w.clock.Add(opens.Sub(w.clock.Now()) + time.Minute)
	v = w.drive(v.ID, both, 12, "running", "completing")
	if v.State != "completed" || v.Rings[0].StartedAt.Before(opens) || v.Rings[1].StartedAt.Before(opens) {
		t.Fatalf("inside the window: %s %+v, want completed with both rings started after %v", v.State, v.Rings, opens)
	}
	t.Logf("window %q: nothing released over 4 check-ins before it opened; completed inside it", window)
}

// TestDeviceRollout: one phone's own document that changes its security
// policy (it answers by itself) cannot be set directly; it goes out as a
// device-scope rollout, a security admin's to start and another's to
// approve, that moves that phone only (its group's other phone keeps its
// document), holds the group's rollouts while it runs, and on completion
// becomes the phone's own assignment, the group's untouched.
func TestDeviceRollout(t *testing.T) {
	if testing.Short() {
		t.Skip("short: real servers end to end; make test runs it")
	}
	w := newWorld(t, worldOpts{backend: "bbolt"})
	olivia := w.admin("olivia", adminauth.RoleOperator)
	sam := w.admin("sam", adminauth.RoleSecurityAdmin)
	sue := w.admin("sue", adminauth.RoleSecurityAdmin)
	phones := []*phone{w.newPhone("floor-4"), w.newPhone("floor-4")}
	all := map[*phone]behaviour{phones[0]: healthy, phones[1]: healthy}
	base := "[[account]]\nname = \"line1\"\nuser = \"1001\"\nregistrar = \"sip.example.test:5061\"\npassword_cred = \"sip/line1\"\n"
	first, err := sam.CreateRollout(ctx, api.RolloutRequest{Kind: "config", Group: "floor-4", Config: base,
		Rings: []api.RolloutRing{{Name: "all", Percent: 100}}, Deadline: "30m", ReportTimeout: "20m"})
	if err != nil {
		t.Fatalf("CreateRollout(group document): %v", err)
	}
	if _, err := sue.ApproveRollout(ctx, first.ID); err != nil {
		t.Fatalf("ApproveRollout(group document): %v", err)
	}
	if v := w.drive(first.ID, all, 6, "running", "completing"); v.State != "completed" {
		t.Fatalf("group document's rollout = %s %+v, want completed", v.State, v.Halt)
	}
	groupVersion := phones[1].GoodConfig

	// The phone's own document: auto-answer, a policy change.
	own := "[[account]]\nname = \"line1\"\nanswer = \"auto\"\n"
	_, err = w.admins["admin"].SetConfig(ctx, "device", phones[0].ID, []byte(own))
	wantCode(t, "SetConfig(device, auto-answer, directly)", err, api.CodeConflict)
	req := api.RolloutRequest{Kind: "config", Device: phones[0].ID, Config: own, Rings: []api.RolloutRing{{Name: "it", Percent: 100}},
		Deadline: "30m", ReportTimeout: "20m"}
	_, err = olivia.CreateRollout(ctx, req)
	wantCode(t, "CreateRollout(device policy change, operator)", err, api.CodeForbidden)
	bad := req
	bad.Group = "floor-4"
	_, err = sam.CreateRollout(ctx, bad)
	wantCode(t, "CreateRollout(a group and a device)", err, api.CodeBadRequest)
	v, err := sam.CreateRollout(ctx, req)
	if err != nil {
		t.Fatalf("CreateRollout(device policy change, security admin): %v", err)
	}
	if v.Device != phones[0].ID || v.Group != "floor-4" || len(v.PolicyChange) == 0 || len(v.Rings) != 1 || v.Rings[0].Devices != 1 {
		t.Fatalf("device rollout = %+v, want device %s of group floor-4, its policy change named, one device", v, phones[0].ID)
	}
	// The group's rollouts wait for it.
	_, err = olivia.CreateRollout(ctx, api.RolloutRequest{Kind: "firmware", Group: "floor-4", Firmware: "hardphone-2.0.0.raucb",
		Rings: []api.RolloutRing{{Name: "all", Percent: 100}}})
	wantCode(t, "CreateRollout(group, while a device rollout of the group is under way)", err, api.CodeConflict)
	_, err = sam.ApproveRollout(ctx, v.ID)
	wantCode(t, "ApproveRollout(its creator)", err, api.CodeConflict)
	if _, err := sue.ApproveRollout(ctx, v.ID); err != nil {
		t.Fatalf("ApproveRollout(device policy change): %v", err)
	}
	if v = w.drive(v.ID, all, 6, "running", "completing"); v.State != "completed" {
		t.Fatalf("device rollout = %s %+v, want completed", v.State, v.Halt)
	}
	if phones[0].GoodConfig <= groupVersion {
		t.Fatalf("the phone's document v%d after its rollout, want past v%d", phones[0].GoodConfig, groupVersion)
	}
	if phones[1].GoodConfig != groupVersion {
		t.Fatalf("the other phone moved to v%d, want still v%d", phones[1].GoodConfig, groupVersion)
	}
	dev, err := w.admins["admin"].Config(ctx, "device", phones[0].ID)
	if err != nil || dev.TOML != own {
		t.Fatalf("the phone's own assignment = %+v, %v; want the rollout's document", dev, err)
	}
	grp, err := w.admins["admin"].Config(ctx, "group", "floor-4")
	if err != nil || grp.TOML != base {
		t.Fatalf("the group's assignment = %+v, %v; want its document unchanged", grp, err)
	}
}
