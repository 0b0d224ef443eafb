// Package kmod loads Linux kernel modules from files with finit_module(2),
// so a static PID 1 needs neither modprobe nor busybox. It resolves no
// dependencies: the caller (the board's module list) gives the order.
//
// Threat: loading a module the board did not name. Load takes a path, never
// a name to search for, and the paths come from the board's list inside the
// signed root filesystem.
//
// Like all of hal/ it holds device code and no policy and imports nothing of
// hardphone's. system imports it, for PID 1, and so does the QEMU test
// guest test/qemu/alsaguest.
package kmod
