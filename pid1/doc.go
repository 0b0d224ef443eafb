// Package pid1 is hardphone as PID 1 on a phone: the kernel starts /init
// from the slot's initramfs, and it is this binary. It mounts the pseudo
// filesystems and the data partition, loads the board's modules, brings up
// the network, arms the watchdog, starts the agent as its child and judges
// the boot by what the agent answers on its control socket, pets the
// watchdog only while the boot is healthy, installs a bundle from an update
// medium once per distinct bundle, gives the code pages its start-up used
// back to the kernel once the boot is judged (internal/resident), prints
// HARDPHONE-MARKER lines on the console for tests, and owns poweroff and
// reboot. It never returns: a PID 1 that exits panics the kernel, which
// (panic=-1) resets the board.
//
// Threat: a new slot that cannot keep the phone working (it crashes, hangs,
// is refused by the registrar) must not stay installed; PID 1 stops petting
// the watchdog, takes back a confirmation the agent made in that boot, and
// the board resets so the bootloader counts the attempt. A network outage
// is not the slot's fault: a boot the agent confirmed (it runs, only the
// registrar is unreachable) passes. A slot below the anti-rollback floor (a
// rollback attack) is reported and, once the agent restored the slot at or
// above the floor, PID 1 reboots into it. A
// medium is mounted read-only, nosuid, nodev, noexec and its bundle is
// verified by the updater like any other, and only a boot already marked
// good installs from it.
//
// Imported by cmd/hardphone. It reads the board (board) and is built on
// system (devices), agent/control (the agent) and internal/resident; on
// other systems than Linux RunIfPID1 does nothing.
package pid1
