package board

// The file name ends in _board: a name ending in _arm64 would build only for
// GOARCH=arm64, and the image builder runs on the host.

import (
	"net/netip"
	"time"
)

// qemuARM64 is the emulated desk phone: QEMU's virt machine with a
// Cortex-A53, Debian's U-Boot (u-boot-qemu) as firmware, one virtio disk,
// a tpm-tis device backed by swtpm, a virtio NIC on QEMU's user network
// and softdog as the watchdog.
//
// The kernel is Debian's cloud flavour, the only Debian arm64 kernel with
// the TIS TPM driver. Its virtio_blk is a module, so a slot holds the
// kernel and an initramfs that is the whole root filesystem: PID 1
// (hardphone) loads the modules below, then mounts the data partition.
func qemuARM64() *Board {
	return &Board{
		Name:       "qemu-arm64",
		Compatible: "hardphone-qemu-arm64",
		GOARCH:     "arm64",
		Disk: &Disk{
			Device:         "/dev/vda",
			UBootInterface: "virtio",
			UBootDevice:    0,
			Partitions: []Partition{
				{Number: 1, Name: "boot", Role: RoleBoot, SizeMiB: 8, Device: "/dev/vda1"},
				{Number: 2, Name: "rootA", Role: RoleSlot, SizeMiB: 64, Device: "/dev/vda2"},
				{Number: 3, Name: "rootB", Role: RoleSlot, SizeMiB: 64, Device: "/dev/vda3"},
				{Number: 4, Name: "data", Role: RoleData, SizeMiB: 64, Device: "/dev/vda4"},
				{Number: 5, Name: "ubootenv", Role: RoleEnv, SizeMiB: 1, Device: "/dev/vda5"},
			},
		},
		Slots: []Slot{
			{Name: "A", Partition: 2, Device: "/dev/vda2"},
			{Name: "B", Partition: 3, Device: "/dev/vda3"},
		},
		Env:      &Env{Partition: 5, Device: "/dev/vda5", Offset: 0, RedundantOffset: 0x4000, Size: 0x4000, Attempts: 3},
		Data:     &Mount{Device: "/dev/vda4", Mountpoint: "/data", FSType: "ext4", Flags: "nosuid,nodev,noexec"},
		StateDir: "/data/hardphone",
		TPM:      "/dev/tpmrm0",
		Kernel: &Kernel{
			Package: "linux-image-cloud-arm64",
			DebArch: "arm64",
			// panic=-1: a dying PID 1 resets the board at once, which
			// costs the slot an attempt like any failed boot.
			Cmdline: "console=ttyAMA0 panic=-1 quiet",
			Image:   "boot/Image",
			Initrd:  "boot/initrd",
		},
		// Order matters: finit_module does not resolve dependencies.
		Modules: []Module{
			{Name: "virtio_ring"}, {Name: "virtio"},
			{Name: "virtio_pci_modern_dev"}, {Name: "virtio_pci_legacy_dev"}, {Name: "virtio_pci"},
			{Name: "virtio_blk"},
			{Name: "tpm_tis_core"}, {Name: "tpm_tis"},
			{Name: "failover"}, {Name: "net_failover"}, {Name: "virtio_net"},
			{Name: "watchdog"}, {Name: "softdog"},
			// nftables for the lockdown policy: the core, and conntrack
			// for "established, related" and the pinhole rules.
			{Name: "libcrc32c"}, {Name: "nfnetlink"}, {Name: "nf_tables"},
			{Name: "nf_defrag_ipv4"}, {Name: "nf_defrag_ipv6"}, {Name: "nf_conntrack"}, {Name: "nft_ct"},
		},
		Network: &Network{
			Interface: "eth0",
			Address:   netip.MustParsePrefix("10.0.2.15/24"),
			Gateway:   netip.MustParseAddr("10.0.2.2"),
		},
		Watchdog: &Watchdog{Device: "/dev/watchdog", Timeout: 4 * time.Second},
		// Short, because emulation is all this board is for: a broken slot
		// costs at most TrialDeadline plus the watchdog timeout per try.
		Health: Health{
			TrialDeadline: 20 * time.Second,
			MaxAgentExits: 3,
			Liveness:      10 * time.Second,
			Poll:          500 * time.Millisecond,
			MarkGoodAfter: time.Second,
		},
		UpdateMedium:       &Medium{Device: "/dev/vdb", FSType: "ext4", Mountpoint: "/run/medium", Bundle: "update.raucb"},
		LockdownPolicy:     "/etc/hardphone/lockdown.toml",
		LockdownPolicyTOML: qemuARM64Lockdown,
		RequireLockdown:    true,
		// The initramfs has no modprobe: PID 1 loads the board's modules
		// itself, so a blocked module is enforced by unloading it.
		ModprobeFile:  "",
		Config:        "/etc/hardphone/hardphone.toml",
		ControlSocket: "/run/hardphone/control.sock",
		// QEMU forwards this address (guestfwd) to the host's loopback.
		Registrar: "10.0.2.100:5061",
	}
}

// qemuARM64Lockdown is the emulated phone's lockdown policy: nothing
// listens (calls arrive over the registration's own TLS flow), media only
// through per-call pinholes in the agent's RTP range, the phone connects
// out to its registrar, the fleet server and the image repository only,
// and the kernel's routing knobs are closed.
const qemuARM64Lockdown = `# Lockdown policy of board qemu-arm64, shipped in its signed image.
version = 1

[firewall]
loopback = "open"
outbound = "restrict"

[rtp]
ports = [16384, 16639]
peers = ["0.0.0.0/0"]

# QEMU's guest forward leads 10.0.2.100:5061 to the registrar.
[[outbound]]
name = "registrar"
proto = "tcp"
port = 5061
to = ["10.0.2.100"]

# And 10.0.2.101:8443 to the fleet server (hpfleet).
[[outbound]]
name = "fleet"
proto = "tcp"
port = 8443
to = ["10.0.2.101"]

# And 10.0.2.102:80 to the vendor's image repository (any static web
# server: what it serves is verified against the pinned image root).
[[outbound]]
name = "image-repo"
proto = "tcp"
port = 80
to = ["10.0.2.102"]

[modules]
block = ["sctp", "dccp", "usb_storage", "bluetooth"]

[sysctl]
"net.ipv4.conf.all.accept_redirects" = 0
"net.ipv4.conf.all.send_redirects" = 0
"net.ipv4.conf.all.accept_source_route" = 0
"net.ipv6.conf.all.accept_redirects" = 0
`
