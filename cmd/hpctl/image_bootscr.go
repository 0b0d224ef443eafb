package main

import (
	"fmt"

	"github.com/hardphone/hardphone/board"
	"github.com/hardphone/hardphone/update/bootchooser/ubootscript"
)

// scratch addresses in the guest's RAM (QEMU virt: RAM from 0x40000000;
// the kernel and initramfs go to kernel_addr_r 0x40400000 and
// ramdisk_addr_r 0x44000000). `env export -s` clears CONFIG_ENV_SIZE
// (0x40000) bytes at its address whatever size it is given, so the export
// buffer has that much room.
const (
	scrEnv0   = 0x4f000000
	scrEnv1   = 0x4f010000
	scrTmp    = 0x4f020000
	scrExport = 0x4f100000
)

// bootScriptText renders the bootchooser script for b (the script itself
// is update/bootchooser's; the RAM addresses are this board family's).
func bootScriptText(b *board.Board) ([]byte, error) {
	e := b.Env
	p := ubootscript.ScriptParams{
		Board: b.Name, Interface: b.Disk.UBootInterface, Device: b.Disk.UBootDevice,
		EnvPartition: e.Partition, EnvOffset: e.Offset, EnvRedundantOffset: e.RedundantOffset, EnvSize: e.Size,
		Attempts: e.Attempts, Image: b.Kernel.Image, Initrd: b.Kernel.Initrd, Cmdline: b.Kernel.Cmdline,
		Env0: scrEnv0, Env1: scrEnv1, Tmp: scrTmp, Export: scrExport,
	}
	for _, s := range b.Slots {
		p.Slots = append(p.Slots, ubootscript.ScriptSlot{Name: s.Name, Partition: s.Partition})
	}
	return ubootscript.Script(p)
}

// ubootFlashEnv is U-Boot's own environment, in QEMU's second flash bank:
// it replaces the built-in default, so it carries the load addresses too.
// bootdelay=-2 boots at once and ignores keys on the console: a phone's
// serial port is no way into the bootloader.
func ubootFlashEnv(b *board.Board) string {
	boot := b.Disk.ByRole(board.RoleBoot)[0].Number
	return fmt.Sprintf(`bootdelay=-2
baudrate=115200
fdt_addr=0x40000000
scriptaddr=0x40200000
kernel_addr_r=0x40400000
ramdisk_addr_r=0x44000000
bootcmd=pci enum; %[1]s scan; if load %[1]s %[2]d:%[3]d ${scriptaddr} boot.scr; then source ${scriptaddr}; fi; echo HPBOOT no boot script; reset
`, b.Disk.UBootInterface, b.Disk.UBootDevice, boot)
}
