package system

import (
	"github.com/hardphone/hardphone/agent/sip"
	"github.com/hardphone/hardphone/update"
)

// The updater's types, for commands that drive an updater system built:
// they go through the wiring, never to update directly.
type (
	Updater         = update.Updater
	UpdateStatus    = update.Status
	InstallResult   = update.InstallResult
	InstallOptions  = update.InstallOptions
	InstallProgress = update.Progress
)

// Install phases that end at once (no progress bar).
const (
	PhaseSwitch = update.PhaseSwitch
	PhaseDone   = update.PhaseDone
)

// SlotStatus is one slot in an UpdateStatus.
type SlotStatus = update.SlotStatus

// Slot states a supervisor judges a boot by.
const (
	SlotGood    = update.StateGood
	SlotPending = update.StatePending
)

// RegistrarUnreachable is an account's error class (AccountStatus.ErrorClass)
// when its registrar cannot be reached at the network level: the boot
// health rule confirms such a boot (the slot runs) without marking it good.
const RegistrarUnreachable = sip.ErrorNetwork
