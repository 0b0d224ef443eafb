package update

import (
	"fmt"

	"github.com/BurntSushi/toml"
)

// LayoutFile is a board's updater layout in TOML, the file
// `hardphone update --board` and the agent's [update] layout read:
//
//	compatible = "hardphone-qemu-arm64"
//	[slots]
//	A = "/dev/vda2"
//	B = "/dev/vda3"
//	[env]
//	path = "/dev/vda5"
//	offset = 0x0
//	size = 0x4000
//	redundant_offset = 0x4000
type LayoutFile struct {
	Compatible string            `toml:"compatible"`
	SlotClass  string            `toml:"slot_class"`
	BootedSlot string            `toml:"booted_slot"`
	Slots      map[string]string `toml:"slots"`
	Env        struct {
		Path            string `toml:"path"`
		Offset          *int64 `toml:"offset"`
		Size            int    `toml:"size"`
		RedundantPath   string `toml:"redundant_path"`
		RedundantOffset *int64 `toml:"redundant_offset"`
		LockFile        string `toml:"lock_file"`
	} `toml:"env"`
}

// ReadLayoutFile decodes a layout file, refusing unknown keys.
func ReadLayoutFile(path string) (*LayoutFile, error) {
	var b LayoutFile
	md, err := toml.DecodeFile(path, &b)
	if err != nil {
		return nil, fmt.Errorf("board layout %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("board layout %s: unknown key %s", path, und[0])
	}
	for name := range b.Slots {
		if name != "A" && name != "B" {
			return nil, fmt.Errorf("board layout %s: slot %q: only A and B are supported", path, name)
		}
	}
	return &b, nil
}

// Config turns a layout into the updater's config; workDir is where plain
// bundles are copied (the data partition). The [env] part is the caller's
// to open (hal/ubootenv), since the updater only sees a BootEnv.
func (b *LayoutFile) Config(workDir string) Config {
	return Config{
		Compatible: b.Compatible, SlotClass: b.SlotClass, BootedSlot: b.BootedSlot,
		Slots:   []Slot{{Name: "A", Device: b.Slots["A"]}, {Name: "B", Device: b.Slots["B"]}},
		WorkDir: workDir,
	}
}
