package system

import (
	"fmt"
	"os"

	"github.com/hardphone/hardphone/board"
	"github.com/hardphone/hardphone/hal/ubootenv"
	"github.com/hardphone/hardphone/update/bootchooser"
)

// BootedSlot is the slot the bootloader booted: the board's override (a
// test rig), else the one the boot script put on the kernel command line,
// "" when neither says.
func BootedSlot(b *board.Board) string {
	if b != nil && b.BootedSlot != "" {
		return b.BootedSlot
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return ""
	}
	return bootchooser.SlotFromCmdline(string(cmdline))
}

// ReadBootState reads the bootchooser variables of b's slots as the
// bootloader left them (PID 1 does, before the agent can change them).
func ReadBootState(b *board.Board) (bootchooser.State, error) {
	if b == nil || b.Env == nil {
		return bootchooser.State{}, fmt.Errorf("board has no boot environment: %w", ErrNoUpdater)
	}
	env, err := ubootenv.Open(BootEnvConfig(b.Env))
	if err != nil {
		return bootchooser.State{}, fmt.Errorf("boot environment: %w", err)
	}
	var names []string
	for _, s := range b.Slots {
		names = append(names, s.Name)
	}
	vars, err := env.Get(bootchooser.Vars(names)...)
	if err != nil {
		return bootchooser.State{}, fmt.Errorf("boot environment: %w", err)
	}
	return bootchooser.Parse(vars, names), nil
}
