package system

import (
	"fmt"
	"os"
	"strconv"

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

// TakeBackBootAttempt sets slot's attempt counter back to left when it is
// higher: PID 1 takes back a confirmation or mark-good of a boot that it
// then judged unhealthy (a crash loop, a hang), so the bootloader counts
// the attempt after all. It reports whether it wrote.
func TakeBackBootAttempt(b *board.Board, slot string, left int) (bool, error) {
	if b == nil || b.Env == nil {
		return false, fmt.Errorf("board has no boot environment: %w", ErrNoUpdater)
	}
	if left < 0 {
		return false, fmt.Errorf("take back boot attempt: counter %d", left)
	}
	env, err := ubootenv.Open(BootEnvConfig(b.Env))
	if err != nil {
		return false, fmt.Errorf("boot environment: %w", err)
	}
	name := bootchooser.LeftVar(slot)
	vars, err := env.Get(name)
	if err != nil {
		return false, fmt.Errorf("boot environment: %w", err)
	}
	st := bootchooser.Parse(vars, []string{slot})
	if cur, ok := st.Left[slot]; ok && cur <= left {
		return false, nil
	}
	if err := env.Set(map[string]string{name: strconv.Itoa(left)}); err != nil {
		return false, fmt.Errorf("boot environment: %w", err)
	}
	return true, nil
}
