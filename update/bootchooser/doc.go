// Package bootchooser is the one place that knows RAUC's U-Boot bootchooser
// convention: the variable names (BOOT_ORDER, BOOT_<slot>_LEFT), the
// kernel command-line key the boot script passes the chosen slot in
// (rauc.slot=), the environment a new disk starts with, and how to read
// the state. The U-Boot script that implements the choice is rendered from
// these names by its subpackage ubootscript (the image builder's).
//
// Threat: a boot environment or command line that is not what the updater
// wrote (a torn write, a hand edit). Values are parsed strictly: a counter
// that is not a small decimal number reads as unset, and a slot name the
// board does not have is no slot.
//
// Imported by update (the updater), system (PID 1 reads the counters the
// bootloader left), ubootscript and cmd/hpctl (the first environment). It
// imports nothing of hardphone's.
package bootchooser
