package bootchooser

import (
	"strconv"
	"strings"
)

// The RAUC bootchooser convention for U-Boot (RAUC docs, "Integration",
// U-Boot; its example boot script): OrderVar lists slot names in the order
// to try, LeftVar(slot) counts the attempts that slot has left. Each boot
// the script takes the first slot in the order with attempts left,
// decrements its counter, saves the environment and boots it with
// CmdlineKey+name on the kernel command line; when no slot has attempts
// left it resets every counter and resets the board.
const (
	OrderVar   = "BOOT_ORDER"
	CmdlineKey = "rauc.slot="
)

// MaxAttempts bounds a counter: the script compares and decrements with
// U-Boot's setexpr, which works in hex, so a counter stays one digit.
const MaxAttempts = 9

// LeftVar is the name of slot's attempt counter.
func LeftVar(slot string) string { return "BOOT_" + slot + "_LEFT" }

// Vars are the variable names the bootchooser keeps for slots: OrderVar
// first, then each slot's counter.
func Vars(slots []string) []string {
	out := []string{OrderVar}
	for _, s := range slots {
		out = append(out, LeftVar(s))
	}
	return out
}

// SlotFromCmdline returns the slot the boot script passed on the kernel
// command line (the last rauc.slot= wins, as the kernel's own parsing
// would see it), "" when there is none.
func SlotFromCmdline(cmdline string) string {
	slot := ""
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, CmdlineKey); ok {
			slot = v
		}
	}
	return slot
}

// State is the bootchooser part of an environment.
type State struct {
	// Order is OrderVar split into slot names.
	Order []string
	// Left holds each slot's counter; a slot is absent when its variable
	// is unset or not a non-negative decimal number (a hand edit).
	Left map[string]int
}

// Parse reads the bootchooser state of slots out of vars (as an
// environment's Get returns them).
func Parse(vars map[string]string, slots []string) State {
	st := State{Order: strings.Fields(vars[OrderVar]), Left: map[string]int{}}
	for _, s := range slots {
		v, ok := vars[LeftVar(s)]
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			st.Left[s] = n
		}
	}
	return st
}

// Next is the slot the bootloader will try on the next boot, "" if none.
func (s State) Next() string {
	for _, name := range s.Order {
		if s.Left[name] > 0 {
			return name
		}
	}
	return ""
}

// First is the slot at the head of the order, "" when the order is empty.
func (s State) First() string {
	if len(s.Order) == 0 {
		return ""
	}
	return s.Order[0]
}

// InOrder reports whether slot is in the order at all.
func (s State) InOrder(slot string) bool {
	for _, name := range s.Order {
		if name == slot {
			return true
		}
	}
	return false
}

// Initial is the environment a new disk starts with: slots[0] primary with
// attempts tries, every other slot after it in the order with none (they
// are empty until the first install).
func Initial(slots []string, attempts int) map[string]string {
	vars := map[string]string{OrderVar: strings.Join(slots, " ")}
	for i, s := range slots {
		n := 0
		if i == 0 {
			n = attempts
		}
		vars[LeftVar(s)] = strconv.Itoa(n)
	}
	return vars
}
