package update

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hardphone/hardphone/update/bootchooser"
)

// goodB installs a bundle of security version secver into B, boots it and
// marks it good: the floor is then secver.
func goodB(t *testing.T, r *rig, secver uint64, opts ...Option) {
	t.Helper()
	pki := sharedPKI(t)
	path := r.ownBundle(bundleSpec{version: fmt.Sprintf("v%d", secver), secver: secver, signer: pki.Leaf, image: randomBytes(t, 1<<20)})
	install(t, r.updater(opts...), path, InstallOptions{})
	if got := r.boot(); got != "B" {
		t.Fatalf("bootloader booted %s after install, want B", got)
	}
	u := r.updater(opts...)
	if _, err := u.CheckBoot(); err != nil {
		t.Fatalf("CheckBoot() in B error %v", err)
	}
	if err := u.MarkGood(); err != nil {
		t.Fatalf("MarkGood() in B error %v", err)
	}
}

// wantVars fails unless the boot environment has these values.
func wantVars(t *testing.T, r *rig, what string, want map[string]string) {
	t.Helper()
	v := r.vars()
	for k, w := range want {
		if v[k] != w {
			t.Fatalf("%s: env %s = %q, want %q (env %v)", what, k, v[k], w, v)
		}
	}
}

// TestFloorPrunesAtMarkGood: once B (security version 5) is marked good
// and the floor reaches 5, A (the factory slot, taken to be at the old
// floor 0) leaves the order with no attempts at once, and every later boot
// is B's.
func TestFloorPrunesAtMarkGood(t *testing.T) {
	r := newRig(t, slotSize)
	goodB(t, r, 5)
	wantVars(t, r, "after mark-good", map[string]string{"BOOT_ORDER": "B", "BOOT_A_LEFT": "0", "BOOT_B_LEFT": "3"})
	st := status(t, r.updater())
	a := slotStatus(t, st, "A")
	if st.Floor.Value != 5 || !a.BelowFloor || a.InBootOrder || !a.Assumed || a.SecurityVersion != 0 || st.BelowFloor {
		t.Fatalf("status after mark-good = %s", mustJSON(t, st))
	}
	if !st.BootMarkedGood || !st.BootConfirmed {
		t.Errorf("status after mark-good: boot_marked_good %v, boot_confirmed %v, want both", st.BootMarkedGood, st.BootConfirmed)
	}
	// Three boots in which B never gets to mark good: the bootloader has
	// nowhere else to go.
	for i := 0; i < 4; i++ {
		if got := r.boot(); got != "B" {
			t.Fatalf("boot %d without mark-good: bootloader booted %s, want B", i+1, got)
		}
	}
}

// TestBootBelowFloor is the attack of issue 10 item 6: B (security version
// 5) is marked good and the floor is 5, but the environment still lets the
// bootloader fall back to A (security version 0), as an agent without the
// boot-time floor left it, or as someone rewrote it. Three boots of B
// without mark-good (its agent dies before it gets to the updater) fall to
// A. CheckBoot reports the attack, A is never blessed or confirmed, B is
// restored first with its attempts, A leaves the order with none, and the
// next boot is B's.
func TestBootBelowFloor(t *testing.T) {
	r := newRig(t, slotSize)
	goodB(t, r, 5)
	if err := r.store().Set(map[string]string{"BOOT_ORDER": "B A", "BOOT_A_LEFT": "3"}); err != nil {
		t.Fatalf("write env: %v", err)
	}
	var seq []string
	for i := 0; i < 4; i++ {
		seq = append(seq, r.boot())
	}
	if got := strings.Join(seq, " "); got != "B B B A" {
		t.Fatalf("boot sequence %q, want B B B A", got)
	}
	u := r.updater()
	rb, err := u.CheckBoot()
	var bf *BelowFloorError
	if !rb || !errors.Is(err, ErrBelowFloor) || !errors.As(err, &bf) {
		t.Fatalf("CheckBoot() in A = %v, %v, want a rollback with ErrBelowFloor", rb, err)
	}
	if bf.Slot != "A" || bf.SecurityVersion != 0 || bf.Floor != 5 || bf.Restored != "B" {
		t.Errorf("CheckBoot() error = %+v, want slot A, security version 0, floor 5, B restored", bf)
	}
	wantVars(t, r, "after CheckBoot in A", map[string]string{"BOOT_ORDER": "B", "BOOT_B_LEFT": "3", "BOOT_A_LEFT": "0"})
	st := status(t, u)
	if !st.BelowFloor || !strings.Contains(st.BelowFloorDetail, "slot B is restored") || st.NextSlot != "B" {
		t.Fatalf("status in A = %s", mustJSON(t, st))
	}
	before := r.snapshot()
	if err := u.MarkGood(); !errors.Is(err, ErrBelowFloor) {
		t.Fatalf("MarkGood() in A error %v, want ErrBelowFloor", err)
	}
	if err := u.ConfirmBoot(); !errors.Is(err, ErrBelowFloor) {
		t.Fatalf("ConfirmBoot() in A error %v, want ErrBelowFloor", err)
	}
	if d := before.diff(r.snapshot()); d != "" {
		t.Fatalf("refused MarkGood/ConfirmBoot changed %s", d)
	}
	st = status(t, u)
	if a := slotStatus(t, st, "A"); a.State == StateGood || st.BootMarkedGood || st.BootConfirmed || st.Floor.Value != 5 {
		t.Fatalf("status after the refusals = %s", mustJSON(t, st))
	}
	// CheckBoot again (the agent restarted) changes nothing more.
	if _, err := r.updater().CheckBoot(); !errors.Is(err, ErrBelowFloor) {
		t.Fatalf("second CheckBoot() in A error %v, want ErrBelowFloor", err)
	}
	if d := before.diff(r.snapshot()); d != "" {
		t.Fatalf("second CheckBoot() changed %s", d)
	}
	if got := r.boot(); got != "B" {
		t.Fatalf("boot after the attack: %s, want B", got)
	}
	u = r.updater()
	if rb, err := u.CheckBoot(); rb || err != nil {
		t.Fatalf("CheckBoot() back in B = %v, %v", rb, err)
	}
	if err := u.MarkGood(); err != nil {
		t.Fatalf("MarkGood() back in B error %v", err)
	}
}

// TestCheckBootPrunes: a power cut after MarkGood advanced the floor but
// before it pruned the order (simulated by putting A back) is finished by
// CheckBoot at the next boot of B.
func TestCheckBootPrunes(t *testing.T) {
	r := newRig(t, slotSize)
	goodB(t, r, 5)
	if err := r.store().Set(map[string]string{"BOOT_ORDER": "B A", "BOOT_A_LEFT": "3"}); err != nil {
		t.Fatalf("write env: %v", err)
	}
	if got := r.boot(); got != "B" {
		t.Fatalf("booted %s, want B", got)
	}
	if rb, err := r.updater().CheckBoot(); rb || err != nil {
		t.Fatalf("CheckBoot() in B = %v, %v", rb, err)
	}
	wantVars(t, r, "after CheckBoot in B", map[string]string{"BOOT_ORDER": "B", "BOOT_A_LEFT": "0", "BOOT_B_LEFT": "2"})
}

// TestBelowFloorNothingToRestore: A below the floor boots and B is not
// good (its install was cut): there is no slot to restore, so the
// environment stays as it is (the phone must boot something), and A is
// still never blessed.
func TestBelowFloorNothingToRestore(t *testing.T) {
	r := newRig(t, slotSize)
	floor := &fakeTPMFloor{n: 0}
	u := r.updater(WithFloor(floor, FloorTPM))
	if err := u.MarkGood(); err != nil { // A adopted at floor 0
		t.Fatalf("MarkGood() in A error %v", err)
	}
	floor.n = 4 // another slot's mark-good, long ago; B since lost
	before := r.snapshot()
	rb, err := u.CheckBoot()
	var bf *BelowFloorError
	if !rb || !errors.As(err, &bf) || bf.Restored != "" {
		t.Fatalf("CheckBoot() = %v, %v, want ErrBelowFloor with nothing restored", rb, err)
	}
	if d := before.diff(r.snapshot()); d != "" {
		t.Fatalf("CheckBoot() with nothing to restore changed %s", d)
	}
	if err := u.MarkGood(); !errors.Is(err, ErrBelowFloor) {
		t.Fatalf("MarkGood() error %v, want ErrBelowFloor", err)
	}
}

// TestFactorySlotAtFloor: the factory set the floor to the shipped image's
// security version and the updater has no record of that image: its first
// boot is not an attack, mark-good records it at the floor.
func TestFactorySlotAtFloor(t *testing.T) {
	r := newRig(t, slotSize)
	floor := &fakeTPMFloor{n: 3}
	u := r.updater(WithFloor(floor, FloorTPM))
	if rb, err := u.CheckBoot(); rb || err != nil {
		t.Fatalf("CheckBoot() on the factory slot = %v, %v", rb, err)
	}
	if err := u.MarkGood(); err != nil {
		t.Fatalf("MarkGood() error %v", err)
	}
	st := status(t, u)
	if a := slotStatus(t, st, "A"); a.State != StateGood || a.SecurityVersion != 3 || !a.Assumed || a.BelowFloor || st.BelowFloor {
		t.Fatalf("status = %s", mustJSON(t, st))
	}
	// The factory environment is kept: nothing is below the floor.
	wantVars(t, r, "after mark-good", map[string]string{"BOOT_ORDER": "A B", "BOOT_A_LEFT": "3"})
}

// TestConfirmBootKeepsPending: a new slot that runs but cannot prove
// itself (the registrar is unreachable) confirms every boot: the
// bootloader never falls back, the slot stays pending and the floor stays
// where it was, across more boots than the attempts; once it is marked
// good the floor advances.
func TestConfirmBootKeepsPending(t *testing.T) {
	r := newRig(t, slotSize)
	pki := sharedPKI(t)
	path := r.ownBundle(bundleSpec{version: "2", secver: 2, signer: pki.Leaf, image: randomBytes(t, 1<<20)})
	install(t, r.updater(), path, InstallOptions{})
	for i := 0; i < 5; i++ {
		if got := r.boot(); got != "B" {
			t.Fatalf("boot %d: bootloader booted %s, want B", i+1, got)
		}
		u := r.updater()
		if rb, err := u.CheckBoot(); rb || err != nil {
			t.Fatalf("boot %d: CheckBoot() = %v, %v", i+1, rb, err)
		}
		if st := status(t, u); st.BootConfirmed {
			t.Fatalf("boot %d: confirmed before ConfirmBoot", i+1)
		}
		if err := u.ConfirmBoot(); err != nil {
			t.Fatalf("boot %d: ConfirmBoot() error %v", i+1, err)
		}
		before := r.snapshot()
		if err := u.ConfirmBoot(); err != nil {
			t.Fatalf("boot %d: second ConfirmBoot() error %v", i+1, err)
		}
		if d := before.diff(r.snapshot()); d != "" {
			t.Fatalf("boot %d: second ConfirmBoot() changed %s", i+1, d)
		}
		st := status(t, u)
		b := slotStatus(t, st, "B")
		if !st.BootConfirmed || st.BootMarkedGood || b.State != StatePending || *b.AttemptsLeft != 3 || st.Floor.Value != 0 ||
			st.LastInstall.Outcome != OutcomeBooted {
			t.Fatalf("boot %d: status after ConfirmBoot = %s", i+1, mustJSON(t, st))
		}
	}
	if got := r.boot(); got != "B" {
		t.Fatalf("bootloader booted %s, want B", got)
	}
	u := r.updater()
	if err := u.MarkGood(); err != nil {
		t.Fatalf("MarkGood() error %v", err)
	}
	st := status(t, u)
	if b := slotStatus(t, st, "B"); b.State != StateGood || st.Floor.Value != 2 || st.LastInstall.Outcome != OutcomeGood {
		t.Fatalf("status after mark-good = %s", mustJSON(t, st))
	}
	wantVars(t, r, "after mark-good", map[string]string{"BOOT_ORDER": "B", "BOOT_A_LEFT": "0"})
}

func TestPlanFloor(t *testing.T) {
	slots := []string{"A", "B"}
	rec := func(state string, sv uint64) SlotRecord { return SlotRecord{State: state, SecurityVersion: sv} }
	env := func(order string, a, b int) bootchooser.State {
		return bootchooser.State{Order: strings.Fields(order), Left: map[string]int{"A": a, "B": b}}
	}
	tests := []struct {
		name     string
		booted   string
		recs     map[string]SlotRecord
		env      bootchooser.State
		floor    uint64
		want     map[string]string // nil: no write
		below    bool
		restored string
	}{
		{"no records", "A", nil, env("A B", 2, 0), 3, nil, false, ""},
		{"both at floor", "B", map[string]SlotRecord{"A": rec(StateGood, 5), "B": rec(StateGood, 5)}, env("B A", 3, 2), 5, nil, false, ""},
		{"floor passed A, B good", "B", map[string]SlotRecord{"A": rec(StateGood, 1), "B": rec(StateGood, 5)}, env("B A", 3, 2), 5,
			map[string]string{"BOOT_ORDER": "B", "BOOT_A_LEFT": "0"}, false, ""},
		{"floor passed A, already pruned", "B", map[string]SlotRecord{"A": rec(StateGood, 1), "B": rec(StateGood, 5)}, env("B", 0, 2), 5, nil, false, ""},
		{"floor passed A, B pending: keep A", "B", map[string]SlotRecord{"A": rec(StateGood, 1), "B": rec(StatePending, 5)}, env("B A", 3, 2), 5, nil, false, ""},
		{"A below booted, B good", "A", map[string]SlotRecord{"A": rec(StateGood, 1), "B": rec(StateGood, 5)}, env("B A", 2, 0), 5,
			map[string]string{"BOOT_ORDER": "B", "BOOT_A_LEFT": "0", "BOOT_B_LEFT": "3"}, true, "B"},
		{"A below booted, B good but not in order", "A", map[string]SlotRecord{"A": rec(StateGood, 1), "B": rec(StateGood, 5)}, env("A", 2, 0), 5,
			map[string]string{"BOOT_ORDER": "B", "BOOT_A_LEFT": "0", "BOOT_B_LEFT": "3"}, true, "B"},
		{"A below booted, B bad", "A", map[string]SlotRecord{"A": rec(StateGood, 1), "B": rec(StateBad, 5)}, env("A B", 2, 0), 5, nil, true, ""},
		{"A below booted, B below too", "A", map[string]SlotRecord{"A": rec(StateGood, 1), "B": rec(StateGood, 4)}, env("B A", 2, 0), 5, nil, true, ""},
		{"booted good not in order", "B", map[string]SlotRecord{"A": rec(StateGood, 1), "B": rec(StateGood, 5)}, env("A", 3, 2), 5,
			map[string]string{"BOOT_ORDER": "B", "BOOT_A_LEFT": "0"}, false, ""},
		{"unrecorded other slot is never pruned", "B", map[string]SlotRecord{"B": rec(StateGood, 5)}, env("B A", 3, 2), 5, nil, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := records{slots: map[string]SlotRecord{}, bad: map[string]knownBad{}}
			for k, v := range tt.recs {
				r.slots[k] = v
			}
			p := planFloor(slots, tt.booted, r, tt.env, tt.floor, 3)
			if fmt.Sprint(p.set) != fmt.Sprint(tt.want) || p.belowFloor != tt.below || p.restored != tt.restored {
				t.Errorf("planFloor(%s booted, %v) = set %v below %v restored %q, want set %v below %v restored %q",
					tt.booted, tt.env, p.set, p.belowFloor, p.restored, tt.want, tt.below, tt.restored)
			}
		})
	}
}
