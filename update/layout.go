package update

import (
	"errors"
	"fmt"

	"github.com/BurntSushi/toml"

	"github.com/hardphone/hardphone/hal/ubootenv"
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

// Configs turns a layout into the updater's and the environment's configs;
// workDir is where plain bundles are copied (the data partition).
func (b *LayoutFile) Configs(workDir string) (Config, ubootenv.Config, error) {
	cfg := Config{
		Compatible: b.Compatible, SlotClass: b.SlotClass, BootedSlot: b.BootedSlot,
		Slots:   []Slot{{Name: "A", Device: b.Slots["A"]}, {Name: "B", Device: b.Slots["B"]}},
		WorkDir: workDir,
	}
	if b.Env.Path == "" {
		return Config{}, ubootenv.Config{}, errors.New("board layout: no [env] path")
	}
	size := b.Env.Size
	if size == 0 {
		size = 0x4000
	}
	var off int64
	if b.Env.Offset != nil {
		off = *b.Env.Offset
	}
	ec := ubootenv.Config{Size: size, Copies: []ubootenv.Copy{{Path: b.Env.Path, Offset: off}}, LockFile: b.Env.LockFile}
	if b.Env.RedundantOffset != nil {
		p := b.Env.RedundantPath
		if p == "" {
			p = b.Env.Path
		}
		ec.Copies = append(ec.Copies, ubootenv.Copy{Path: p, Offset: *b.Env.RedundantOffset})
	}
	return cfg, ec, nil
}
