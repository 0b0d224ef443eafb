// Package bootchooser is the one place that knows RAUC's U-Boot bootchooser
// convention: the variable names (BOOT_ORDER, BOOT_<slot>_LEFT), the
// kernel command-line key the boot script passes the chosen slot in
// (rauc.slot=), the environment a new disk starts with, and the U-Boot
// script that implements the choice over a redundant fw_env block.
//
// Threat: a boot environment or command line that is not what the updater
// wrote (a torn write, a hand edit). Values are parsed strictly: a counter
// that is not a small decimal number reads as unset, and a slot name the
// board does not have is no slot. The script refuses a copy whose CRC does
// not match and never boots a slot with no attempts left.
//
// Imported by update (the updater), system (PID 1 reads the counters the
// bootloader left) and cmd/hpctl (the image builder writes the script and
// the first environment). It imports nothing of hardphone's.
package bootchooser
