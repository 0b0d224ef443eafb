// Package board describes the hardware hardphone runs on: one file per
// board (qemu_arm64_board.go, desktop.go) says which partitions exist and where,
// which kernel modules PID 1 loads and in what order, the TPM device, the
// network, the watchdog and the health rule a new slot must pass, the
// update medium and the services and lockdown policy the board ships. A new
// desk phone is a new file here, nothing else.
//
// system (the wiring, on the phone) and pid1 read a Board to build the hal
// parts, and cmd/hpctl builds a board's disk image and boot script from the
// same value, so the image and the running phone cannot disagree about the
// layout. ReadLayout reads a test rig's slots and environment (files) into a
// Board the same way. It imports nothing of hardphone's (a Board is data),
// which keeps device code out of the host tool.
//
// Threat: a layout that differs between the image builder, the boot script
// and the updater, so that an update writes over the wrong partition or the
// boot counter lives where the bootloader does not look. Validate checks a
// Board for overlaps and for a redundant environment before anything uses
// it.
package board
