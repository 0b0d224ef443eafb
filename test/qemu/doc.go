// Package qemu holds the end-to-end tests of the emulated desk phone (board
// qemu-arm64): the image hpctl builds, booted by Debian's U-Boot in
// qemu-system-aarch64 with a swtpm as its TPM, registering to a Kamailio
// the test starts on its own loopback, updated, rolled back and powered off
// mid-write. Every scenario is judged by the HARDPHONE-MARKER lines PID 1
// prints on the serial console (and the U-Boot script's HPBOOT lines).
//
// One scenario boots no phone: TestALSALoopback runs Debian's generic arm64
// kernel (it has snd-aloop; the board's cloud kernel has no sound) with an
// initramfs whose PID 1 is test/qemu/alsaguest, and plays and captures
// through the phone's ALSA path on the loopback card.
//
// The fleet scenarios start hpfleet on the host too, reached from the guest
// at 10.0.2.101:8443; TestFleetDirector adds the vendor's image repository
// (nginx) at 10.0.2.102:80, PostgreSQL for the registrar's subscriber
// table, and delivers a configuration document and a firmware update
// through hpfleet's director; TestFleetRolloutCrashLoop runs a staged
// firmware rollout over the same repositories with hpfleet's audit log,
// admin sessions and rollout engine on. Each guest forward is one the board's
// lockdown policy allows.
//
// A short slice (first boot, zero-touch first boot with hpfleet, good
// update, the ALSA loopback, a firmware rollout halted by a crash-looping
// canary) runs in `go test ./...`; the rest needs HARDPHONE_QEMU_FULL=1,
// which `make qemu-test` sets. Scenarios run one at a time: each is a
// whole emulated phone.
//
// It has only test files besides this one (and the guest program
// alsaguest, which only its test builds); nothing imports it.
package qemu
