package board

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Board describes one kind of hardware. Lookup returns a fresh value each
// time; treat it as read-only.
type Board struct {
	// Name is what --board takes, e.g. "qemu-arm64".
	Name string
	// Compatible is the RAUC compatible string: a bundle's must equal it.
	Compatible string
	// GOARCH and GOARM ("7" for arm, else "") of the phone binary.
	GOARCH, GOARM string

	// Disk is the partition table; nil on a board whose slots are files
	// (the desktop).
	Disk *Disk
	// Slots are the A/B root slots, A first; zero on a board without
	// updates.
	Slots []Slot
	// Env is where the bootchooser variables live; nil without updates.
	Env *Env
	// Data is the writable partition PID 1 mounts; nil when the board has
	// no PID 1 of ours.
	Data *Mount
	// StateDir is the agent's state_dir ("" on the desktop: the user picks).
	StateDir string
	// TPM is the TPM device for credential_store; "" when the board has
	// none (the desktop uses a swtpm or a software key file, explicitly).
	TPM string

	// Kernel says where the kernel comes from; nil when not ours to build.
	Kernel *Kernel
	// Modules are loaded by PID 1 in this order (dependencies first).
	Modules []Module
	// Network is the static address PID 1 configures; nil for none.
	Network *Network
	// Watchdog is the hardware watchdog PID 1 arms; nil for none.
	Watchdog *Watchdog
	// Health is the rule a booted slot must pass.
	Health Health
	// UpdateMedium is removable storage PID 1 installs a bundle from;
	// nil for none.
	UpdateMedium *Medium

	// Services are the OS services that exist besides the agent (init
	// scripts or units a lockdown policy may deny); none where hardphone
	// is PID 1.
	Services []string
	// LockdownPolicy is the policy file the image ships and the config
	// names; "" for none.
	LockdownPolicy string
	// LockdownPolicyTOML is that file's content (agent/lockdown's schema),
	// which the image builder writes into the signed root filesystem.
	LockdownPolicyTOML string
	// RequireLockdown: the agent refuses to start on this board without a
	// lockdown policy (every phone); a desktop may run without one.
	RequireLockdown bool
	// ModprobeFile is where the lockdown policy's module blocks are
	// written; "" when the board has no modprobe.d to write (its modules
	// are loaded by PID 1 only, so unloading is the whole enforcement).
	ModprobeFile string
	// Config is the agent config PID 1 starts the agent with. It lives on
	// the root filesystem, inside the signed slot: the data partition is
	// writable and unauthenticated, so nothing that decides security is
	// read from it.
	Config string
	// ControlSocket is the agent's control_socket, where PID 1 asks for
	// health.
	ControlSocket string
	// Registrar is the registrar (host:port) a generated config points at;
	// "" means the image builder needs a config of its own.
	Registrar string
	// BootedSlot names the booted slot instead of the kernel command line;
	// only a test rig's layout file sets it ("" everywhere else).
	BootedSlot string
}

// Disk is a GPT partition table. Partitions are laid out in order from
// 1 MiB, each starting where the previous one ends.
type Disk struct {
	// Device is the whole disk as the phone sees it.
	Device string
	// UBootInterface and UBootDevice name the disk in U-Boot's commands
	// ("virtio" 0, "mmc" 1): the boot script reads the environment and
	// loads the slot through them.
	UBootInterface string
	UBootDevice    int
	// Partitions in table order; Number runs 1, 2, ...
	Partitions []Partition
}

// Role is what a partition holds.
type Role string

// Partition roles.
const (
	RoleBoot Role = "boot" // FAT, the bootloader's script
	RoleSlot Role = "slot" // an A/B root slot
	RoleData Role = "data" // ext4, state that survives updates
	RoleEnv  Role = "env"  // raw, the redundant bootchooser environment
)

// Partition is one GPT entry.
type Partition struct {
	Number int
	// Name is the GPT partition name.
	Name string
	Role Role
	// SizeMiB is the size in MiB (1048576 bytes).
	SizeMiB int
	// Device is the partition's device node on the phone.
	Device string
}

// Slot is one A/B root slot.
type Slot struct {
	// Name is the boot name the bootchooser uses for it (update/bootchooser).
	Name string
	// Partition is the partition number holding it.
	Partition int
	// Device is its device node on the phone.
	Device string
}

// Env is the bootchooser environment: two copies of an fw_env block with
// the redundant (flags byte) header on one raw partition.
type Env struct {
	// Partition is the partition number; Device its node on the phone.
	// Partition is 0 on a board without a disk table (a test rig's files).
	Partition int
	Device    string
	// RedundantDevice holds the second copy when it is not on Device
	// ("" = Device).
	RedundantDevice string
	// LockFile is the lock shared with fw_setenv ("" = none).
	LockFile string
	// Offset and RedundantOffset are the copies' byte offsets in the
	// partition; Size is the size of each copy.
	Offset, RedundantOffset int64
	Size                    int
	// Attempts is what a slot's attempt counter starts at and is reset to
	// (update/bootchooser); the updater is built with the same value. One
	// digit: U-Boot's setexpr works in hex.
	Attempts int
}

// Mount is a filesystem PID 1 mounts.
type Mount struct {
	Device     string
	Mountpoint string
	FSType     string
	// Flags are mount options ("nosuid,nodev,noexec").
	Flags string
}

// Kernel says which kernel the image builder fetches and how it boots.
type Kernel struct {
	// Package is the Debian meta package whose dependency names the
	// versioned kernel package, e.g. "linux-image-cloud-arm64".
	Package string
	// DebArch is the Debian architecture, e.g. "arm64".
	DebArch string
	// Cmdline is the kernel command line; the boot script appends the
	// chosen slot (update/bootchooser).
	Cmdline string
	// Image and Initrd are the file names inside a slot.
	Image, Initrd string
}

// Module is one kernel module PID 1 loads.
type Module struct {
	Name string
	// Params is the module parameter string ("soft_margin=5"), "" for none.
	Params string
}

// Network is a static IPv4 setup on one interface.
type Network struct {
	Interface string
	Address   netip.Prefix
	Gateway   netip.Addr
}

// Watchdog is the watchdog device PID 1 arms.
type Watchdog struct {
	Device  string
	Timeout time.Duration
}

// Health is how PID 1 judges a boot, and with it when it stops petting
// the watchdog so that the board resets and the bootloader counts the
// attempt.
type Health struct {
	// TrialDeadline: a slot on trial (installed, not yet marked good) must
	// be marked good, or confirmed by the agent (it runs, the registrar is
	// only unreachable), this long after PID 1 started. It must leave
	// room for the first registration attempt to fail: on a network that
	// drops packets that is the TCP connect timeout.
	TrialDeadline time.Duration
	// MaxAgentExits is how many times the agent may exit before PID 1
	// gives up on this boot.
	MaxAgentExits int
	// Liveness is how long the control socket may stay silent before the
	// agent counts as hung.
	Liveness time.Duration
	// Poll is how often PID 1 asks the agent.
	Poll time.Duration
	// MarkGoodAfter is [update] mark_good_after in a generated config: how
	// long every account must stay registered.
	MarkGoodAfter time.Duration
}

// Medium is removable storage holding a bundle at Bundle (a path inside
// the filesystem). PID 1 installs it once per distinct file, and only from
// a slot that has been marked good.
type Medium struct {
	Device     string
	FSType     string
	Mountpoint string
	Bundle     string
}

// Names lists the boards Lookup knows.
func Names() []string { return []string{"desktop", "qemu-arm64"} }

// Lookup returns the board called name.
func Lookup(name string) (*Board, error) {
	var b *Board
	switch name {
	case "qemu-arm64":
		b = qemuARM64()
	case "desktop":
		b = desktop()
	default:
		return nil, fmt.Errorf("board %q (known: %s): %w", name, strings.Join(Names(), ", "), ErrUnknownBoard)
	}
	if err := b.Validate(); err != nil {
		return nil, err
	}
	return b, nil
}

// MiB is the unit of partition sizes.
const MiB = 1 << 20

// firstPartitionOffset leaves room for the protective MBR and the GPT.
const firstPartitionOffset = 1 * MiB

// Start returns the byte offset of partition n on the disk.
func (d *Disk) Start(n int) (int64, error) {
	off := int64(firstPartitionOffset)
	for _, p := range d.Partitions {
		if p.Number == n {
			return off, nil
		}
		off += int64(p.SizeMiB) * MiB
	}
	return 0, fmt.Errorf("no partition %d: %w", n, errInvalid)
}

// Size returns the disk's size in bytes: the partitions plus room for the
// backup GPT at the end.
func (d *Disk) Size() int64 {
	off := int64(firstPartitionOffset)
	for _, p := range d.Partitions {
		off += int64(p.SizeMiB) * MiB
	}
	return off + 1*MiB
}

// Partition returns partition n.
func (d *Disk) Partition(n int) (Partition, bool) {
	for _, p := range d.Partitions {
		if p.Number == n {
			return p, true
		}
	}
	return Partition{}, false
}

// ByRole returns the partitions with role r, in table order.
func (d *Disk) ByRole(r Role) []Partition {
	var out []Partition
	for _, p := range d.Partitions {
		if p.Role == r {
			out = append(out, p)
		}
	}
	return out
}

// Slot returns the slot called name.
func (b *Board) Slot(name string) (Slot, bool) {
	for _, s := range b.Slots {
		if s.Name == name {
			return s, true
		}
	}
	return Slot{}, false
}

// Validate checks that the description is consistent: partitions numbered
// in order with unique names, slots and environment on partitions of the
// right role, two environment copies that fit and do not overlap, and
// health settings the supervisor can work with.
func (b *Board) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("board %s: %s: %w", b.Name, fmt.Sprintf(format, args...), errInvalid)
	}
	if b.Name == "" || b.Compatible == "" || b.GOARCH == "" {
		return bad("name, compatible and GOARCH are required")
	}
	if b.GOARCH == "arm" && b.GOARM == "" {
		return bad("GOARCH arm needs GOARM")
	}
	if b.Disk != nil {
		names := map[string]bool{}
		for i, p := range b.Disk.Partitions {
			if p.Number != i+1 {
				return bad("partition %q is number %d, want %d", p.Name, p.Number, i+1)
			}
			if p.Name == "" || names[p.Name] || p.SizeMiB <= 0 || p.Device == "" {
				return bad("partition %d: name %q (unique), size %d MiB (> 0) and device %q (set) required", p.Number, p.Name, p.SizeMiB, p.Device)
			}
			names[p.Name] = true
		}
		if b.Disk.UBootInterface == "" {
			return bad("disk needs its U-Boot interface name")
		}
		for _, r := range []Role{RoleBoot, RoleData, RoleEnv} {
			if n := len(b.Disk.ByRole(r)); n != 1 {
				return bad("%d %s partitions, want 1", n, r)
			}
		}
	}
	if len(b.Slots) != 0 {
		if err := b.validateUpdates(bad); err != nil {
			return err
		}
	}
	if b.Data != nil && (b.Data.Device == "" || b.Data.Mountpoint == "" || b.Data.FSType == "") {
		return bad("data mount needs device, mountpoint and fstype")
	}
	if b.Watchdog != nil && (b.Watchdog.Device == "" || b.Watchdog.Timeout < 2*time.Second) {
		return bad("watchdog needs a device and a timeout of at least 2s")
	}
	if b.Data != nil {
		h := b.Health
		if h.Poll <= 0 || h.Liveness <= h.Poll || h.TrialDeadline <= 0 || h.MaxAgentExits < 1 {
			return bad("health: poll > 0, liveness > poll, trial deadline > 0 and max agent exits >= 1 required")
		}
		if b.Watchdog != nil && h.Poll*2 > b.Watchdog.Timeout {
			return bad("health poll %v is too slow for the watchdog timeout %v", h.Poll, b.Watchdog.Timeout)
		}
		if b.Config == "" || b.ControlSocket == "" {
			return bad("a board with PID 1 needs config and control socket paths")
		}
	}
	if b.RequireLockdown && (b.LockdownPolicy == "" || b.LockdownPolicyTOML == "") {
		return bad("a board that requires a lockdown policy must ship one (path and content)")
	}
	if (b.LockdownPolicy == "") != (b.LockdownPolicyTOML == "") {
		return bad("lockdown policy path and content go together")
	}
	seen := map[string]bool{}
	for _, m := range b.Modules {
		if m.Name == "" || seen[m.Name] || strings.ContainsAny(m.Name, "/ ") {
			return bad("module %q: empty, repeated or not a plain name", m.Name)
		}
		seen[m.Name] = true
	}
	return nil
}

func (b *Board) validateUpdates(bad func(string, ...any) error) error {
	if len(b.Slots) != 2 || b.Slots[0].Name != "A" || b.Slots[1].Name != "B" {
		return bad("slots must be A and B")
	}
	if b.Env == nil {
		return bad("A/B slots need an environment")
	}
	if b.Slots[0].Device == "" || b.Slots[1].Device == "" || b.Slots[0].Device == b.Slots[1].Device {
		return bad("slots need two different devices")
	}
	if b.BootedSlot != "" && b.BootedSlot != "A" && b.BootedSlot != "B" {
		return bad("booted slot %q is not A or B", b.BootedSlot)
	}
	e := b.Env
	if e.Device == "" {
		return bad("the environment needs a device")
	}
	if e.Attempts < 1 || e.Attempts > bootAttemptsMax {
		return bad("attempts %d, want 1 to %d", e.Attempts, bootAttemptsMax)
	}
	if e.Size < 0x1000 || e.Size%512 != 0 || e.Offset%512 != 0 || e.RedundantOffset%512 != 0 {
		// The boot script reads and writes each copy as whole 512-byte
		// blocks.
		return bad("environment copies must be sector aligned and at least 4 KiB")
	}
	if e.RedundantDevice == "" || e.RedundantDevice == e.Device {
		lo, hi := min(e.Offset, e.RedundantOffset), max(e.Offset, e.RedundantOffset)
		if lo+int64(e.Size) > hi {
			return bad("environment copies at %#x and %#x (size %#x) overlap", e.Offset, e.RedundantOffset, e.Size)
		}
	}
	if b.Disk == nil {
		// A test rig's layout: slots and environment are files.
		return nil
	}
	if b.Kernel == nil {
		return bad("A/B slots on a disk need a kernel")
	}
	var slotParts []int
	for _, s := range b.Slots {
		p, ok := b.Disk.Partition(s.Partition)
		if !ok || p.Role != RoleSlot || p.Device != s.Device {
			return bad("slot %s: partition %d is not a slot partition with device %s", s.Name, s.Partition, s.Device)
		}
		slotParts = append(slotParts, s.Partition)
	}
	if got := b.Disk.ByRole(RoleSlot); len(got) != 2 {
		return bad("%d slot partitions, want 2", len(got))
	}
	if slices.Contains(slotParts, 0) || slotParts[0] == slotParts[1] {
		return bad("slots share a partition")
	}
	p, ok := b.Disk.Partition(e.Partition)
	if !ok || p.Role != RoleEnv || p.Device != e.Device || (e.RedundantDevice != "" && e.RedundantDevice != e.Device) {
		return bad("environment partition %d is not the env partition with device %s", e.Partition, e.Device)
	}
	if max(e.Offset, e.RedundantOffset)+int64(e.Size) > int64(p.SizeMiB)*MiB {
		return bad("environment copies at %#x and %#x (size %#x) leave the partition", e.Offset, e.RedundantOffset, e.Size)
	}
	if b.Kernel.Package == "" || b.Kernel.DebArch == "" || b.Kernel.Image == "" || b.Kernel.Initrd == "" {
		return bad("kernel needs package, architecture, image and initrd names")
	}
	return nil
}

// bootAttemptsMax is the largest attempt counter the boot script can
// count down (U-Boot's setexpr works in hex: one digit).
const bootAttemptsMax = 9
