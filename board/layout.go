package board

import (
	"fmt"
	"os"

	"github.com/BurntSushi/toml"
)

// ReadLayout reads a test rig's layout file: A/B slots and a boot
// environment kept in plain files (or devices) on a machine that is not a
// board of ours, for the updater's own tests and for a vendor trying it on
// a development box. A phone never reads one: its board value says all of
// this.
//
//	compatible = "hardphone-test"
//	booted_slot = "A"          # optional: else the slot the kernel command line names
//	attempts = 3               # optional, 1 to 9 (default 3)
//	[slots]
//	A = "/srv/rig/slotA"
//	B = "/srv/rig/slotB"
//	[env]
//	path = "/srv/rig/ubootenv"
//	offset = 0x0               # optional
//	size = 0x4000              # optional (default 0x4000)
//	redundant_path = ""        # optional: the second copy in another file
//	redundant_offset = 0x4000
//	lock_file = ""             # optional: shared with fw_setenv
//
// Unknown keys are refused, and the result passes Validate.
func ReadLayout(path string) (*Board, error) {
	var f struct {
		Compatible string            `toml:"compatible"`
		BootedSlot string            `toml:"booted_slot"`
		Attempts   *int              `toml:"attempts"`
		Slots      map[string]string `toml:"slots"`
		Env        struct {
			Path            string `toml:"path"`
			Offset          int64  `toml:"offset"`
			Size            int    `toml:"size"`
			RedundantPath   string `toml:"redundant_path"`
			RedundantOffset *int64 `toml:"redundant_offset"`
			LockFile        string `toml:"lock_file"`
		} `toml:"env"`
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("layout: %w", err)
	}
	md, err := toml.Decode(string(b), &f)
	if err != nil {
		return nil, fmt.Errorf("layout %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("layout %s: unknown key %s: %w", path, und[0], errInvalid)
	}
	for name := range f.Slots {
		if name != "A" && name != "B" {
			return nil, fmt.Errorf("layout %s: slot %q: only A and B: %w", path, name, errInvalid)
		}
	}
	if f.Env.RedundantOffset == nil {
		return nil, fmt.Errorf("layout %s: env.redundant_offset is required (the environment is redundant): %w", path, errInvalid)
	}
	attempts := 3
	if f.Attempts != nil {
		attempts = *f.Attempts
	}
	size := f.Env.Size
	if size == 0 {
		size = 0x4000
	}
	lb := &Board{
		Name: "layout:" + path, Compatible: f.Compatible, GOARCH: "any", BootedSlot: f.BootedSlot,
		Slots: []Slot{{Name: "A", Device: f.Slots["A"]}, {Name: "B", Device: f.Slots["B"]}},
		Env: &Env{Device: f.Env.Path, RedundantDevice: f.Env.RedundantPath, Offset: f.Env.Offset,
			RedundantOffset: *f.Env.RedundantOffset, Size: size, Attempts: attempts, LockFile: f.Env.LockFile},
	}
	if err := lb.Validate(); err != nil {
		return nil, fmt.Errorf("layout %s: %w", path, err)
	}
	return lb, nil
}
