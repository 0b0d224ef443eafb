package update

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hardphone/hardphone/update/bootchooser"
)

// BootEnv is the bootloader environment as the updater needs it: read some
// variables, and set several in one atomic write. hal/ubootenv's Store
// implements it over an fw_env block with redundant copies.
type BootEnv interface {
	// Get returns the named variables that are set.
	Get(names ...string) (map[string]string, error)
	// Set changes the given variables, keeping all others, in one write
	// that a power cut leaves either wholly done or not done at all.
	Set(vars map[string]string) error
}

// The bootchooser variables and their meaning are update/bootchooser's;
// the updater reads them through its BootEnv.

func (u *Updater) readBootState() (bootchooser.State, map[string]string, error) {
	vars, err := u.env.Get(bootchooser.Vars(u.cfg.slotNames())...)
	if err != nil {
		return bootchooser.State{}, nil, fmt.Errorf("read boot environment: %w", err)
	}
	return bootchooser.Parse(vars, u.cfg.slotNames()), vars, nil
}

// primaryOrder puts slot first and keeps the others in their order; slots
// missing from the old order follow.
func (u *Updater) primaryOrder(b bootchooser.State, slot string) string {
	out := []string{slot}
	for _, s := range b.Order {
		if s != slot && u.cfg.slot(s) != nil {
			out = append(out, s)
		}
	}
	for _, s := range u.cfg.Slots {
		found := false
		for _, o := range out {
			found = found || o == s.Name
		}
		if !found {
			out = append(out, s.Name)
		}
	}
	return strings.Join(out, " ")
}

// verdict is what a reconciliation concluded about the last install.
type verdict struct {
	changed  bool
	rollback bool
	note     string
}

// reconcile compares the last install record with this boot: which slot
// booted, whether it is a new boot, and what the environment says. It
// updates r in memory (Status uses it read-only; CheckBoot, Install and
// MarkGood store the result):
//   - same boot as the install: nothing to learn yet;
//   - an install that was still writing: interrupted, slot bad;
//   - written but the order never switched: interrupted, slot bad;
//   - booted into the target: booted, waiting for mark-good;
//   - booted into the other slot after the switch: rolled back, slot bad,
//     image known bad.
func reconcile(r *records, booted, bootID string, env bootchooser.State, now time.Time) verdict {
	last := r.last
	if last == nil || last.BootID == bootID {
		return verdict{}
	}
	switch last.Outcome {
	case OutcomeInstalling, OutcomeWritten, OutcomeSwitched, OutcomeBooted:
	default:
		return verdict{}
	}
	target := last.Target
	rec := r.slots[target]
	last.BootID = bootID
	switch {
	case last.Outcome == OutcomeInstalling:
		last.Outcome, last.Error = OutcomeInterrupted, "reboot while the slot was being written"
		rec.State = StateBad
	case booted == target:
		last.Outcome = OutcomeBooted
	case last.Outcome == OutcomeWritten && env.First() != target:
		last.Outcome, last.Error = OutcomeInterrupted, "reboot before the boot order was switched"
		rec.State = StateBad
	default:
		last.Outcome = OutcomeRolledBack
		last.Error = fmt.Sprintf("booted slot %s instead of %s", booted, target)
		rec.State = StateBad
		if last.SHA256 != "" {
			r.bad[last.SHA256] = knownBad{Version: last.Version, Slot: target, At: now}
		}
		r.slots[target] = rec
		return verdict{changed: true, rollback: true, note: last.Error}
	}
	r.slots[target] = rec
	return verdict{changed: true, note: last.Outcome}
}

// CheckBoot reconciles the records with this boot and stores the result;
// the agent calls it once at start. It reports whether this boot is a
// rollback from the last install.
//
// It then holds the boot environment to the anti-rollback floor (see
// bootfloor.go): slots whose security version the floor has passed leave
// the order. A booted slot below the floor is a rollback attack: CheckBoot
// puts the good slot at or above the floor first with its attempts, takes
// the booted one out of the order, and returns rollback true with a
// *BelowFloorError (errors.Is(err, ErrBelowFloor)); the slot is never
// marked good.
func (u *Updater) CheckBoot() (rollback bool, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	booted, err := u.cfg.bootedSlot()
	if err != nil {
		return false, err
	}
	v, err := u.reconcileAndStore(booted)
	if err != nil {
		return v.rollback, err
	}
	floor, err := u.floor.Read()
	if err != nil {
		return v.rollback, fmt.Errorf("check boot: read anti-rollback floor (%s): %w", u.floorKind, err)
	}
	p, r, err := u.enforceFloor(booted, floor)
	if err != nil {
		return v.rollback, fmt.Errorf("check boot: %w", err)
	}
	if bf := belowFloor(r, booted.Name, floor, p.restored); bf != nil {
		u.log.Error("rollback attack: the booted slot is below the anti-rollback floor; it will not be marked good",
			"event", "rollback_attack", "slot", booted.Name, "security_version", r.slots[booted.Name].SecurityVersion,
			"floor", floor, "floor_kind", u.floorKind, "restored", p.restored)
		return true, bf
	}
	return v.rollback, nil
}

func (u *Updater) reconcileAndStore(booted Slot) (verdict, error) {
	bootID, err := u.cfg.bootID()
	if err != nil {
		return verdict{}, err
	}
	env, _, err := u.readBootState()
	if err != nil {
		return verdict{}, err
	}
	r, err := u.load()
	if err != nil {
		return verdict{}, err
	}
	v := reconcile(&r, booted.Name, bootID, env, u.now())
	if !v.changed {
		return v, nil
	}
	if err := u.store(r); err != nil {
		return v, err
	}
	if v.rollback {
		u.log.Warn("rollback: the new slot did not boot, running the old one", "slot", booted.Name,
			"failed_slot", r.last.Target, "version", r.last.Version, "detail", v.note)
	} else {
		u.log.Info("install state after reboot", "slot", r.last.Target, "outcome", r.last.Outcome)
	}
	return v, nil
}

// restoreCounter gives the booted slot its attempts back (its counter
// to Attempts) and keeps it in the order: the bootloader will try it
// again. One atomic write, only of what changes.
func (u *Updater) restoreCounter(booted Slot) error {
	env, _, err := u.readBootState()
	if err != nil {
		return err
	}
	set := map[string]string{}
	if left, ok := env.Left[booted.Name]; !ok || left != u.cfg.Attempts {
		set[bootchooser.LeftVar(booted.Name)] = strconv.Itoa(u.cfg.Attempts)
	}
	if !env.InOrder(booted.Name) {
		// A slot that booted but is not in the order would never boot
		// again; keep it as the last fallback.
		set[bootchooser.OrderVar] = strings.Join(append(append([]string(nil), env.Order...), booted.Name), " ")
	}
	if len(set) == 0 {
		return nil
	}
	if err := u.env.Set(set); err != nil {
		return fmt.Errorf("write boot environment: %w", err)
	}
	return nil
}

// ConfirmBoot tells the updater this boot runs: the agent is up and
// locally healthy, though it may not have proven the slot yet (the
// registrar may be unreachable). It restores the booted slot's attempt
// counter, so the bootloader does not count this boot against the slot,
// and records the confirmation (Status.BootConfirmed). It does not mark
// the slot good: the record's state and the floor are unchanged, a
// pending slot stays pending. A slot below the anti-rollback floor is
// refused (ErrBelowFloor) and nothing is written. Calling it again in the
// same boot writes nothing. Order for power cuts: the environment first,
// then the records.
func (u *Updater) ConfirmBoot() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	booted, err := u.cfg.bootedSlot()
	if err != nil {
		return fmt.Errorf("confirm boot: %w", err)
	}
	if _, err := u.reconcileAndStore(booted); err != nil {
		return fmt.Errorf("confirm boot: %w", err)
	}
	bootID, err := u.cfg.bootID()
	if err != nil {
		return fmt.Errorf("confirm boot: %w", err)
	}
	floor, err := u.floor.Read()
	if err != nil {
		return fmt.Errorf("confirm boot: read anti-rollback floor (%s): %w", u.floorKind, err)
	}
	r, err := u.load()
	if err != nil {
		return fmt.Errorf("confirm boot: %w", err)
	}
	if bf := belowFloor(r, booted.Name, floor, ""); bf != nil {
		return fmt.Errorf("confirm boot: %w", bf)
	}
	if err := u.restoreCounter(booted); err != nil {
		return fmt.Errorf("confirm boot: %w", err)
	}
	changed := adoptUnrecorded(&r, u.cfg.slotNames(), floor)
	rec := r.slots[booted.Name]
	if rec.ConfirmedBoot != bootID {
		rec.ConfirmedBoot = bootID
		r.slots[booted.Name] = rec
		changed = true
	}
	if changed {
		if err := u.store(r); err != nil {
			return fmt.Errorf("confirm boot: %w", err)
		}
		u.log.Info("boot confirmed: attempt counter restored, slot not marked good", "slot", booted.Name, "state", rec.State)
	}
	return nil
}

// MarkGood tells the updater this boot is healthy: the booted slot's
// attempt counter is restored (back to Attempts), its
// record becomes good, and if its security version is above the floor the
// floor advances to it; then every slot the floor has passed leaves the
// boot order. A slot below the floor is refused (ErrBelowFloor) and
// nothing is written. Calling it again is harmless; it writes only what
// changes. Order for power cuts: the environment first (so the slot keeps
// booting), then the records, then the floor, then the pruning of the
// order, each idempotent (CheckBoot prunes again at the next boot).
func (u *Updater) MarkGood() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	booted, err := u.cfg.bootedSlot()
	if err != nil {
		return fmt.Errorf("mark good: %w", err)
	}
	if _, err := u.reconcileAndStore(booted); err != nil {
		return fmt.Errorf("mark good: %w", err)
	}
	bootID, err := u.cfg.bootID()
	if err != nil {
		return fmt.Errorf("mark good: %w", err)
	}
	floor, err := u.floor.Read()
	if err != nil {
		return fmt.Errorf("mark good: read anti-rollback floor (%s): %w", u.floorKind, err)
	}
	r, err := u.load()
	if err != nil {
		return fmt.Errorf("mark good: %w", err)
	}
	if bf := belowFloor(r, booted.Name, floor, ""); bf != nil {
		return fmt.Errorf("mark good: %w", bf)
	}
	if err := u.restoreCounter(booted); err != nil {
		return fmt.Errorf("mark good: %w", err)
	}

	// Slots never recorded are taken to be at the floor as it stands now,
	// before it advances.
	changed := adoptUnrecorded(&r, u.cfg.slotNames(), floor)
	now := u.now().UTC()
	rec := r.slots[booted.Name]
	newlyGood := rec.State != StateGood
	if newlyGood {
		rec.State = StateGood
		rec.MarkedGoodAt = &now
		if rec.SHA256 != "" {
			delete(r.bad, rec.SHA256)
		}
	}
	if rec.GoodBoot != bootID || rec.ConfirmedBoot != bootID {
		rec.GoodBoot, rec.ConfirmedBoot = bootID, bootID
		changed = true
	}
	r.slots[booted.Name] = rec
	if l := r.last; l != nil && l.Target == booted.Name && l.Outcome != OutcomeGood &&
		(l.Outcome == OutcomeBooted || l.Outcome == OutcomeSwitched || l.Outcome == OutcomeWritten) {
		l.Outcome = OutcomeGood
		l.FinishedAt = &now
		newlyGood = true
	}
	if changed || newlyGood {
		if err := u.store(r); err != nil {
			return fmt.Errorf("mark good: %w", err)
		}
	}
	if newlyGood {
		u.log.Info("slot marked good", "slot", booted.Name, "version", rec.Version, "security_version", rec.SecurityVersion)
	}

	// Only a slot that booted and passed its health check may raise the
	// floor: before that, the old slot must still be installable.
	if rec.SecurityVersion > floor {
		if err := u.floor.AdvanceTo(rec.SecurityVersion); err != nil {
			return fmt.Errorf("mark good: advance anti-rollback floor (%s) from %d to %d: %w", u.floorKind, floor, rec.SecurityVersion, err)
		}
		u.log.Info("anti-rollback floor advanced", "floor_kind", u.floorKind, "from", floor, "to", rec.SecurityVersion)
		floor = rec.SecurityVersion
	}
	// The floor may have passed the other slot: it leaves the order now,
	// while this slot is proven.
	if _, _, err := u.enforceFloor(booted, floor); err != nil {
		return fmt.Errorf("mark good: %w", err)
	}
	return nil
}
