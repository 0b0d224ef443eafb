package update

import (
	"fmt"
	"os"
	"strings"

	"github.com/hardphone/hardphone/update/bootchooser"
)

// Slot is one A/B slot: its boot name (the bootchooser's name for it, on
// the kernel command line and in its attempt counter) and the block device or file that
// holds it.
type Slot struct {
	Name   string
	Device string
}

// Config is the board's side of the updater, until the board package
// supplies it.
type Config struct {
	// Compatible is the board's compatible string; a bundle's must equal it.
	Compatible string
	// SlotClass is the manifest image class the slots take (default
	// "rootfs").
	SlotClass string
	// Slots are exactly two.
	Slots []Slot
	// BootedSlot, when not empty, names the booted slot instead of
	// the slot the kernel command line names (bootchooser.CmdlineKey).
	BootedSlot string
	// CmdlinePath is read for the booted slot (default /proc/cmdline).
	CmdlinePath string
	// BootIDPath tells one boot from the next (default
	// /proc/sys/kernel/random/boot_id).
	BootIDPath string
	// Attempts is what a slot's attempt counter is set to when a slot is made
	// primary or marked good (default 3).
	Attempts int
	// WorkDir holds the private copy of a plain bundle during install
	// (default os.TempDir()).
	WorkDir string
}

func (c *Config) setDefaults() {
	if c.SlotClass == "" {
		c.SlotClass = "rootfs"
	}
	if c.CmdlinePath == "" {
		c.CmdlinePath = "/proc/cmdline"
	}
	if c.BootIDPath == "" {
		c.BootIDPath = "/proc/sys/kernel/random/boot_id"
	}
	if c.Attempts == 0 {
		c.Attempts = 3
	}
	if c.WorkDir == "" {
		c.WorkDir = os.TempDir()
	}
}

func (c *Config) validate() error {
	if c.Compatible == "" {
		return fmt.Errorf("no compatible: %w", errConfig)
	}
	if len(c.Slots) != 2 {
		return fmt.Errorf("%d slots, want 2: %w", len(c.Slots), errConfig)
	}
	for _, s := range c.Slots {
		if !validSlotName(s.Name) {
			return fmt.Errorf("slot name %q, want letters and digits: %w", s.Name, errConfig)
		}
		if s.Device == "" {
			return fmt.Errorf("slot %s has no device: %w", s.Name, errConfig)
		}
	}
	if c.Slots[0].Name == c.Slots[1].Name || c.Slots[0].Device == c.Slots[1].Device {
		return fmt.Errorf("slots %v share a name or device: %w", c.Slots, errConfig)
	}
	if c.BootedSlot != "" && c.slot(c.BootedSlot) == nil {
		return fmt.Errorf("booted slot %q is not a configured slot: %w", c.BootedSlot, errConfig)
	}
	if c.Attempts < 1 || c.Attempts > 99 {
		return fmt.Errorf("attempts %d, want 1 to 99: %w", c.Attempts, errConfig)
	}
	return nil
}

func validSlotName(n string) bool {
	if n == "" || len(n) > 16 {
		return false
	}
	for _, r := range n {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func (c *Config) slotNames() []string {
	var out []string
	for _, s := range c.Slots {
		out = append(out, s.Name)
	}
	return out
}

func (c *Config) slot(name string) *Slot {
	for i := range c.Slots {
		if c.Slots[i].Name == name {
			return &c.Slots[i]
		}
	}
	return nil
}

func (c *Config) other(name string) Slot {
	if c.Slots[0].Name == name {
		return c.Slots[1]
	}
	return c.Slots[0]
}

// bootedSlot returns the slot the running system booted from: the override,
// or the slot the kernel command line names, as the boot script sets it.
func (c *Config) bootedSlot() (Slot, error) {
	name := c.BootedSlot
	if name == "" {
		b, err := os.ReadFile(c.CmdlinePath)
		if err != nil {
			return Slot{}, fmt.Errorf("read kernel command line: %w: %w", err, errNoBootedSlot)
		}
		if name = bootchooser.SlotFromCmdline(string(b)); name == "" {
			return Slot{}, fmt.Errorf("no %s in %s: %w", bootchooser.CmdlineKey, c.CmdlinePath, errNoBootedSlot)
		}
	}
	s := c.slot(name)
	if s == nil {
		return Slot{}, fmt.Errorf("booted slot %q is not a configured slot: %w", name, errNoBootedSlot)
	}
	return *s, nil
}

func (c *Config) bootID() (string, error) {
	b, err := os.ReadFile(c.BootIDPath)
	if err != nil {
		return "", fmt.Errorf("read boot id: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if id == "" {
		return "", fmt.Errorf("boot id file %s is empty", c.BootIDPath)
	}
	return id, nil
}
