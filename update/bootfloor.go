package update

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/hardphone/hardphone/update/bootchooser"
)

// The anti-rollback floor at boot time. Install refuses a bundle below the
// floor, but the bootloader knows nothing of it: a slot that was written
// before the floor advanced (the old firmware in the other slot) stays
// bootable, and three failed boots of the new slot would fall back to it.
// So the floor also rules the boot environment:
//
//   - once the floor passes a slot's security version (MarkGood advanced
//     it, or CheckBoot finds it so), that slot's counter is 0 and it leaves
//     the boot order, as long as a good slot at or above the floor stays in it;
//   - a booted slot below the floor is never blessed: CheckBoot reports it
//     as a rollback attack (BelowFloorError) and puts the good slot at or
//     above the floor first with its attempts; MarkGood and ConfirmBoot
//     refuse it (ErrBelowFloor).
//
// The new firmware prunes the old slot as soon as it is proven, so even an
// old slot whose own agent predates this rule is never booted again; the
// check at boot is the second line, for an environment changed behind the
// updater's back.
//
// A slot the updater never recorded (the factory image, before the first
// mark-good) has no known security version. It is taken to be at the floor
// the factory set, and recorded so (SlotRecord.Assumed) before this updater
// first writes records or advances the floor, which is the last moment that
// assumption holds.

// BelowFloorError is the booted slot's security version below the
// anti-rollback floor: CheckBoot, MarkGood and ConfirmBoot return it
// (errors.Is(err, ErrBelowFloor)).
type BelowFloorError struct {
	Slot            string
	SecurityVersion uint64
	Floor           uint64
	// Restored is the slot the next boot tries, put first with its
	// attempts: good and at or above the floor. "" when there is none,
	// and the environment was left as it was.
	Restored string
}

func (e *BelowFloorError) Error() string {
	s := fmt.Sprintf("rollback attack: booted slot %s has security version %d, below the anti-rollback floor %d",
		e.Slot, e.SecurityVersion, e.Floor)
	if e.Restored != "" {
		return s + "; slot " + e.Restored + " is restored for the next boot"
	}
	return s + "; no good slot at or above the floor to restore"
}

// Is makes errors.Is(err, ErrBelowFloor) hold.
func (e *BelowFloorError) Is(target error) bool { return target == ErrBelowFloor }

// floorPlan is what the floor demands of the boot environment.
type floorPlan struct {
	// set holds the variables to write; empty when the environment already
	// obeys the floor (or nothing can be done).
	set map[string]string
	// belowFloor: the booted slot's security version is below the floor.
	belowFloor bool
	// restored is the slot put first with its attempts because the booted
	// slot is below the floor; "" for none.
	restored string
	// pruned are the slots taken out of the order with no attempts.
	pruned []string
}

// planFloor decides, from the records, the environment and the floor, which
// slots leave the order and whether the booted slot is below the floor. A
// slot is pruned only when a good slot at or above the floor stays (the
// booted one, or the one restored): the phone must always have a slot to
// boot, and never loses its only one to the floor.
func planFloor(slots []string, booted string, r records, env bootchooser.State, floor uint64, attempts int) floorPlan {
	below := func(name string) bool {
		rec, ok := r.slots[name]
		return ok && rec.SecurityVersion < floor
	}
	acceptable := func(name string) bool {
		rec, ok := r.slots[name]
		return ok && rec.State == StateGood && rec.SecurityVersion >= floor
	}
	p := floorPlan{belowFloor: below(booted)}
	keep := ""
	switch {
	case acceptable(booted):
		keep = booted
	case p.belowFloor:
		for _, s := range slots {
			if s != booted && acceptable(s) {
				keep, p.restored = s, s
				break
			}
		}
	}
	if keep == "" {
		return p
	}
	out := map[string]bool{}
	for _, s := range slots {
		if s != keep && below(s) {
			out[s] = true
			p.pruned = append(p.pruned, s)
		}
	}
	var order []string
	if p.restored != "" {
		order = append(order, keep)
	}
	for _, s := range env.Order {
		if !out[s] && (p.restored == "" || s != keep) {
			order = append(order, s)
		}
	}
	if !contains(order, keep) {
		order = append(order, keep)
	}
	set := map[string]string{}
	if strings.Join(order, " ") != strings.Join(env.Order, " ") {
		set[bootchooser.OrderVar] = strings.Join(order, " ")
	}
	for _, s := range p.pruned {
		if left, ok := env.Left[s]; !ok || left != 0 {
			set[bootchooser.LeftVar(s)] = "0"
		}
	}
	if p.restored != "" {
		if left, ok := env.Left[keep]; !ok || left != attempts {
			set[bootchooser.LeftVar(keep)] = strconv.Itoa(attempts)
		}
	}
	if len(set) > 0 {
		p.set = set
	}
	return p
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// adoptUnrecorded records every configured slot the updater has no record
// of at the floor as it stands (see the comment at the top of this file).
// It reports whether it added any.
func adoptUnrecorded(r *records, slots []string, floor uint64) bool {
	added := false
	for _, s := range slots {
		if _, ok := r.slots[s]; !ok {
			r.slots[s] = SlotRecord{State: StateUnknown, SecurityVersion: floor, Assumed: true}
			added = true
		}
	}
	return added
}

// enforceFloor applies planFloor to the environment: prune what the floor
// has passed and, when the booted slot is below the floor, restore the good
// slot. It writes the environment only (one atomic Set), never the records
// or the floor, so it is idempotent and safe after a power cut anywhere in
// MarkGood.
func (u *Updater) enforceFloor(booted Slot, floor uint64) (floorPlan, records, error) {
	env, _, err := u.readBootState()
	if err != nil {
		return floorPlan{}, records{}, err
	}
	r, err := u.load()
	if err != nil {
		return floorPlan{}, records{}, err
	}
	p := planFloor(u.cfg.slotNames(), booted.Name, r, env, floor, u.cfg.Attempts)
	if p.set == nil {
		return p, r, nil
	}
	if err := u.env.Set(p.set); err != nil {
		return p, r, fmt.Errorf("write boot environment for the anti-rollback floor: %w", err)
	}
	if len(p.pruned) > 0 {
		u.log.Info("slots below the anti-rollback floor left the boot order", "slots", strings.Join(p.pruned, ","),
			"floor", floor, "floor_kind", u.floorKind)
	}
	if p.restored != "" {
		u.log.Warn("restored the slot at or above the anti-rollback floor for the next boot", "slot", p.restored,
			"booted", booted.Name, "floor", floor)
	}
	return p, r, nil
}

// belowFloor returns the BelowFloorError for the booted slot, nil when it
// is at or above the floor (or has no record: see adoptUnrecorded).
func belowFloor(r records, booted string, floor uint64, restored string) error {
	rec, ok := r.slots[booted]
	if !ok || rec.SecurityVersion >= floor {
		return nil
	}
	return &BelowFloorError{Slot: booted, SecurityVersion: rec.SecurityVersion, Floor: floor, Restored: restored}
}
