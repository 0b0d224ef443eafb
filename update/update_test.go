package update

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/update/bootchooser"

	"github.com/hardphone/hardphone/test"
)

const slotSize = 8 << 20

func install(t *testing.T, u *Updater, path string, opts InstallOptions) *InstallResult {
	t.Helper()
	res, err := u.Install(context.Background(), path, opts)
	if err != nil {
		t.Fatalf("Install(%s) error %v", filepath.Base(path), err)
	}
	return res
}

func status(t *testing.T, u *Updater) *Status {
	t.Helper()
	st, err := u.Status()
	if err != nil {
		t.Fatalf("Status() error %v", err)
	}
	return st
}

func slotStatus(t *testing.T, st *Status, name string) SlotStatus {
	t.Helper()
	for _, s := range st.Slots {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("status has no slot %s", name)
	return SlotStatus{}
}

// TestInstallBootMarkGood walks the good path with the simulated
// bootloader: install into B, boot B, mark good, floor advances.
func TestInstallBootMarkGood(t *testing.T) {
	r := newRig(t, slotSize)
	pki := sharedPKI(t)
	image := randomBytes(t, 3<<20+17)
	path := r.ownBundle(bundleSpec{version: "2.0", secver: 5, signer: pki.Leaf, image: image})
	u := r.updater()
	var events []Progress
	res := install(t, u, path, InstallOptions{Progress: func(p Progress) { events = append(events, p) }})
	if res.Slot != "B" || res.Bytes != int64(len(image)) || res.SecurityVersion != 5 {
		t.Fatalf("Install() = %+v", res)
	}
	if !r.slotHas(r.SlotB, image) {
		t.Fatalf("slot B does not hold the image")
	}
	if v := r.vars(); v["BOOT_ORDER"] != "B A" || v["BOOT_B_LEFT"] != "3" || v["BOOT_A_LEFT"] != "3" || v["bootcmd"] != "run bootchooser" {
		t.Fatalf("env after install = %v, want BOOT_ORDER=B A, BOOT_B_LEFT=3, others kept", v)
	}
	if len(events) == 0 || events[len(events)-1].Phase != PhaseDone {
		t.Errorf("progress events end with %+v, want done", events[len(events)-1:])
	}
	st := status(t, u)
	if !st.PendingReboot || st.NextSlot != "B" || slotStatus(t, st, "B").State != StatePending || st.Rollback {
		t.Fatalf("status after install = %s", mustJSON(t, st))
	}

	if got := r.boot(); got != "B" {
		t.Fatalf("bootloader booted %s, want B", got)
	}
	u = r.updater()
	if rb, err := u.CheckBoot(); err != nil || rb {
		t.Fatalf("CheckBoot() = %v, %v, want no rollback", rb, err)
	}
	st = status(t, u)
	b := slotStatus(t, st, "B")
	if st.BootedSlot != "B" || b.State != StatePending || *b.AttemptsLeft != 2 || st.LastInstall.Outcome != OutcomeBooted {
		t.Fatalf("status after boot = %s", mustJSON(t, st))
	}
	if err := u.MarkGood(); err != nil {
		t.Fatalf("MarkGood() error %v", err)
	}
	st = status(t, u)
	b = slotStatus(t, st, "B")
	if b.State != StateGood || *b.AttemptsLeft != 3 || b.Version != "2.0" || b.SecurityVersion != 5 || st.Floor.Value != 5 ||
		st.Floor.Kind != FloorStateFile || !st.Floor.Weaker || st.LastInstall.Outcome != OutcomeGood {
		t.Fatalf("status after mark-good = %s", mustJSON(t, st))
	}
	// MarkGood again writes nothing.
	before := r.snapshot()
	if err := u.MarkGood(); err != nil {
		t.Fatalf("MarkGood() again error %v", err)
	}
	if d := before.diff(r.snapshot()); d != "" {
		t.Errorf("second MarkGood() changed %s", d)
	}
	// The next boot keeps B.
	if got := r.boot(); got != "B" {
		t.Fatalf("bootloader booted %s after mark-good, want B", got)
	}
}

// TestRollback: the new slot never reaches mark-good; after three tries
// the bootloader falls back to A, which is reported as a rollback, and the
// same image is refused until forced.
func TestRollback(t *testing.T) {
	r := newRig(t, slotSize)
	pki := sharedPKI(t)
	image := randomBytes(t, 1<<20)
	path := r.ownBundle(bundleSpec{version: "3.0-broken", secver: 2, signer: pki.Leaf, image: image})
	install(t, r.updater(), path, InstallOptions{})
	var seq []string
	for i := 0; i < 4; i++ {
		seq = append(seq, r.boot())
		u := r.updater()
		rb, err := u.CheckBoot()
		if err != nil {
			t.Fatalf("CheckBoot() error %v", err)
		}
		if rb != (i == 3) {
			t.Fatalf("boot %d (%s): CheckBoot() rollback = %v", i, seq[i], rb)
		}
	}
	if got := strings.Join(seq, " "); got != "B B B A" {
		t.Fatalf("boot sequence %q, want B B B A", got)
	}
	u := r.updater()
	st := status(t, u)
	if !st.Rollback || st.BootedSlot != "A" || slotStatus(t, st, "B").State != StateBad || st.LastInstall.Outcome != OutcomeRolledBack {
		t.Fatalf("status after rollback = %s", mustJSON(t, st))
	}
	if st.Floor.Value != 0 {
		t.Errorf("floor %d after a rollback, want 0: only mark-good advances it", st.Floor.Value)
	}
	if err := u.MarkGood(); err != nil {
		t.Fatalf("MarkGood(A) error %v", err)
	}
	before := r.snapshot()
	_, err := u.Install(context.Background(), path, InstallOptions{})
	if !errors.Is(err, ErrKnownBad) {
		t.Fatalf("Install(rolled back image) error %v, want ErrKnownBad", err)
	}
	if d := before.diff(r.snapshot()); d != "" {
		t.Fatalf("refused reinstall changed %s", d)
	}
	install(t, u, path, InstallOptions{Force: true})
	if v := r.vars(); v["BOOT_ORDER"] != "B A" || v["BOOT_B_LEFT"] != "3" {
		t.Errorf("env after forced install = %v", v)
	}
}

// TestInstallWhilePendingRefused: the booted slot is new and not yet good;
// overwriting the other slot would destroy the only known-good system.
func TestInstallWhilePendingRefused(t *testing.T) {
	r := newRig(t, slotSize)
	pki := sharedPKI(t)
	path := r.ownBundle(bundleSpec{version: "1", signer: pki.Leaf, image: randomBytes(t, 1<<20)})
	install(t, r.updater(), path, InstallOptions{})
	if got := r.boot(); got != "B" {
		t.Fatalf("booted %s, want B", got)
	}
	u := r.updater()
	before := r.snapshot()
	if _, err := u.Install(context.Background(), path, InstallOptions{}); !errors.Is(err, errNotGood) {
		t.Fatalf("Install() while pending error %v, want errNotGood", err)
	}
	if d := before.diff(r.snapshot()); d != "" {
		t.Fatalf("refused install changed %s", d)
	}
}

// TestRaucBundlesInstall: bundles made by `rauc bundle` (Debian rauc 1.8),
// both formats, install and boot; rauc drops [meta.*], so they count as
// security version 0.
func TestRaucBundlesInstall(t *testing.T) {
	pki := sharedPKI(t)
	for _, format := range []string{"verity", "plain"} {
		t.Run(format, func(t *testing.T) {
			r := newRig(t, slotSize)
			image := randomBytes(t, 2<<20+5)
			img := filepath.Join(r.Dir, "rootfs.img")
			writeFile(t, img, image)
			path := test.RaucBundle(t, test.RaucBundleSpec{Format: format, Compatible: rigCompatible, Version: "9.9",
				Images: map[string]string{"rootfs": img}, Cert: pki.Leaf.CertFile, Key: pki.Leaf.KeyFile,
				Extra: "\n[meta.hardphone]\nsecurity-version=4\n"}, filepath.Join(r.Dir, "rauc.raucb"))
			res := install(t, r.updater(), path, InstallOptions{})
			if res.SecurityVersion != 0 || res.Version != "9.9" {
				t.Errorf("Install(rauc %s) = %+v, want security version 0 (rauc 1.8 drops [meta.*])", format, res)
			}
			if !r.slotHas(r.SlotB, image) {
				t.Fatalf("slot B does not hold the image from the rauc %s bundle", format)
			}
			if got := r.boot(); got != "B" {
				t.Fatalf("booted %s, want B", got)
			}
			if err := r.updater().MarkGood(); err != nil {
				t.Fatalf("MarkGood() error %v", err)
			}
		})
	}
}

func TestStatusJSON(t *testing.T) {
	r := newRig(t, slotSize)
	st := status(t, r.updater())
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatalf("json.Marshal(Status) error %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("json.Unmarshal error %v", err)
	}
	for _, k := range []string{"booted_slot", "boot_order", "next_slot", "slots", "rollback", "pending_reboot", "anti_rollback_floor"} {
		if _, ok := m[k]; !ok {
			t.Errorf("status JSON lacks %q: %s", k, b)
		}
	}
	slots := m["slots"].([]any)
	a := slots[0].(map[string]any)
	for _, k := range []string{"name", "device", "booted", "state", "security_version", "attempts_left", "in_boot_order"} {
		if _, ok := a[k]; !ok {
			t.Errorf("slot JSON lacks %q: %v", k, a)
		}
	}
	if m["anti_rollback_floor"].(map[string]any)["kind"] != FloorStateFile {
		t.Errorf("floor kind %v, want %s", m["anti_rollback_floor"], FloorStateFile)
	}
}

// fakeTPMFloor stands in for hal/tpm's NV counter in tests of the wiring
// (the kind string and that only mark-good advances it).
type fakeTPMFloor struct{ n uint64 }

func (f *fakeTPMFloor) Read() (uint64, error) { return f.n, nil }
func (f *fakeTPMFloor) AdvanceTo(n uint64) error {
	if n > f.n {
		f.n = n
	}
	return nil
}

func TestFloorInterface(t *testing.T) {
	r := newRig(t, slotSize)
	pki := sharedPKI(t)
	floor := &fakeTPMFloor{n: 3}
	u := r.updater(WithFloor(floor, FloorTPM))
	if st := status(t, u); st.Floor.Kind != FloorTPM || st.Floor.Value != 3 || st.Floor.Weaker {
		t.Fatalf("floor status = %+v", st.Floor)
	}
	old := r.ownBundle(bundleSpec{version: "old", secver: 2, signer: pki.Leaf, image: randomBytes(t, 1<<20)})
	if _, err := u.Install(context.Background(), old, InstallOptions{}); !errors.Is(err, ErrRollback) {
		t.Fatalf("Install(secver 2, floor 3) error %v, want ErrRollback", err)
	}
	cur := r.ownBundle(bundleSpec{version: "new", secver: 7, signer: pki.Leaf, image: randomBytes(t, 1<<20)})
	install(t, u, cur, InstallOptions{})
	if floor.n != 3 {
		t.Fatalf("floor %d after install, want 3 until mark-good", floor.n)
	}
	r.boot()
	if err := r.updater(WithFloor(floor, FloorTPM)).MarkGood(); err != nil {
		t.Fatalf("MarkGood() error %v", err)
	}
	if floor.n != 7 {
		t.Errorf("floor %d after mark-good, want 7", floor.n)
	}
}

func TestReconcile(t *testing.T) {
	now := time.Unix(1e9, 0)
	rec := func(outcome, bootID string) *InstallRecord {
		return &InstallRecord{Target: "B", SHA256: "aa", Outcome: outcome, BootID: bootID}
	}
	switched := bootchooser.State{Order: []string{"B", "A"}, Left: map[string]int{"A": 3, "B": 0}}
	unswitched := bootchooser.State{Order: []string{"A", "B"}, Left: map[string]int{"A": 2, "B": 0}}
	tests := []struct {
		name        string
		last        *InstallRecord
		booted      string
		env         bootchooser.State
		wantOutcome string
		wantState   string
		rollback    bool
	}{
		{"no install", nil, "A", switched, "", "", false},
		{"same boot", rec(OutcomeSwitched, "boot1"), "A", switched, OutcomeSwitched, "", false},
		{"new slot booted", rec(OutcomeSwitched, "boot0"), "B", switched, OutcomeBooted, "", false},
		{"switched, old slot booted", rec(OutcomeSwitched, "boot0"), "A", switched, OutcomeRolledBack, StateBad, true},
		{"booted once, then old slot", rec(OutcomeBooted, "boot0"), "A", switched, OutcomeRolledBack, StateBad, true},
		{"written, never switched", rec(OutcomeWritten, "boot0"), "A", unswitched, OutcomeInterrupted, StateBad, false},
		{"written, switch done but not recorded, rolled back", rec(OutcomeWritten, "boot0"), "A", switched, OutcomeRolledBack, StateBad, true},
		{"written, switch not recorded, new slot booted", rec(OutcomeWritten, "boot0"), "B", switched, OutcomeBooted, "", false},
		{"cut while writing", rec(OutcomeInstalling, "boot0"), "A", unswitched, OutcomeInterrupted, StateBad, false},
		{"good stays good", rec(OutcomeGood, "boot0"), "A", switched, OutcomeGood, "", false},
		{"failed stays failed", rec(OutcomeFailed, "boot0"), "A", unswitched, OutcomeFailed, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := records{slots: map[string]SlotRecord{}, bad: map[string]knownBad{}, last: tt.last}
			v := reconcile(&r, tt.booted, "boot1", tt.env, now)
			if v.rollback != tt.rollback {
				t.Errorf("reconcile() rollback = %v, want %v", v.rollback, tt.rollback)
			}
			if tt.last == nil {
				return
			}
			if r.last.Outcome != tt.wantOutcome || r.slots["B"].State != tt.wantState {
				t.Errorf("reconcile() outcome %q slot state %q, want %q %q", r.last.Outcome, r.slots["B"].State, tt.wantOutcome, tt.wantState)
			}
			if _, bad := r.bad["aa"]; bad != tt.rollback {
				t.Errorf("reconcile() known bad = %v, want %v", bad, tt.rollback)
			}
		})
	}
}
