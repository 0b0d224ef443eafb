package update

import "fmt"

// Status is what `hardphone update status --json` prints.
type Status struct {
	Compatible string `json:"compatible"`
	BootedSlot string `json:"booted_slot"`
	// BootOrder is the bootchooser's order; NextSlot the slot the bootloader tries next
	// (first in BootOrder with attempts left), "" if none.
	BootOrder []string     `json:"boot_order"`
	NextSlot  string       `json:"next_slot"`
	Slots     []SlotStatus `json:"slots"`
	// Rollback is true when this boot came back to the old slot after the
	// last install; RollbackDetail says from what.
	Rollback       bool   `json:"rollback"`
	RollbackDetail string `json:"rollback_detail,omitempty"`
	// BelowFloor is true when the booted slot's security version is below
	// the anti-rollback floor: a rollback attack (or a fallback the floor
	// forbids). The slot is never marked good; BelowFloorDetail says the
	// versions and which slot the next boot tries.
	BelowFloor       bool   `json:"below_floor"`
	BelowFloorDetail string `json:"below_floor_detail,omitempty"`
	// BootConfirmed is true once ConfirmBoot or MarkGood restored the
	// booted slot's attempt counter in this boot; BootMarkedGood once
	// MarkGood passed in this boot.
	BootConfirmed  bool `json:"boot_confirmed"`
	BootMarkedGood bool `json:"boot_marked_good"`
	// PendingReboot is true when an install switched the boot order in
	// this very boot.
	PendingReboot bool           `json:"pending_reboot"`
	LastInstall   *InstallRecord `json:"last_install,omitempty"`
	Floor         FloorStatus    `json:"anti_rollback_floor"`
}

// SlotStatus is one slot in Status.
type SlotStatus struct {
	Name   string `json:"name"`
	Device string `json:"device"`
	Booted bool   `json:"booted"`
	SlotRecord
	// AttemptsLeft is the slot's attempt counter; nil when unset or not a number.
	AttemptsLeft *int `json:"attempts_left"`
	InBootOrder  bool `json:"in_boot_order"`
	// BelowFloor: the floor has passed this slot's security version; it
	// may not boot as good again.
	BelowFloor bool `json:"below_floor"`
}

// FloorStatus reports the anti-rollback floor and where it is kept.
type FloorStatus struct {
	Kind  string `json:"kind"` // FloorTPM or FloorStateFile
	Value uint64 `json:"value"`
	// Weaker is true for FloorStateFile: whoever can write the data
	// partition can lower it.
	Weaker bool   `json:"weaker"`
	Error  string `json:"error,omitempty"`
}

// Status reports slots, boot counters, the last install and the floor. It
// writes nothing: what CheckBoot would conclude about this boot is applied
// to a copy.
func (u *Updater) Status() (*Status, error) {
	booted, err := u.cfg.bootedSlot()
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	bootID, err := u.cfg.bootID()
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	env, _, err := u.readBootState()
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	r, err := u.load()
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	reconcile(&r, booted.Name, bootID, env, u.now())
	floor, floorErr := u.floor.Read()
	st := &Status{Compatible: u.cfg.Compatible, BootedSlot: booted.Name, BootOrder: env.Order, NextSlot: env.Next(),
		LastInstall: r.last}
	if st.BootOrder == nil {
		st.BootOrder = []string{}
	}
	for _, s := range u.cfg.Slots {
		ss := SlotStatus{Name: s.Name, Device: s.Device, Booted: s.Name == booted.Name, InBootOrder: env.InOrder(s.Name)}
		ss.SlotRecord = r.slots[s.Name]
		if ss.State == "" {
			ss.State = StateUnknown
		}
		if n, ok := env.Left[s.Name]; ok {
			ss.AttemptsLeft = &n
		}
		if rec, ok := r.slots[s.Name]; ok && floorErr == nil {
			ss.BelowFloor = rec.SecurityVersion < floor
		}
		st.Slots = append(st.Slots, ss)
	}
	if rec, ok := r.slots[booted.Name]; ok {
		st.BootConfirmed = rec.ConfirmedBoot == bootID
		st.BootMarkedGood = rec.GoodBoot == bootID
	}
	if floorErr == nil {
		p := planFloor(u.cfg.slotNames(), booted.Name, r, env, floor, u.cfg.Attempts)
		if bf := belowFloor(r, booted.Name, floor, p.restored); bf != nil {
			st.BelowFloor, st.BelowFloorDetail = true, bf.Error()
		}
	}
	if l := r.last; l != nil {
		st.Rollback = l.Outcome == OutcomeRolledBack
		if st.Rollback {
			st.RollbackDetail = l.Error
		}
		st.PendingReboot = l.Outcome == OutcomeSwitched && l.BootID == bootID
	}
	st.Floor = FloorStatus{Kind: u.floorKind, Weaker: u.floorKind == FloorStateFile}
	if floorErr != nil {
		st.Floor.Error = floorErr.Error()
	} else {
		st.Floor.Value = floor
	}
	return st, nil
}
