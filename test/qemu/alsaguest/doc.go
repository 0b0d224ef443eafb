// Command alsaguest is PID 1 of the one-shot initramfs TestALSALoopback
// (test/qemu) boots on Debian's generic arm64 kernel: it loads the sound
// modules the initramfs carries (snd-aloop and what it needs) with
// hal/kmod, opens the loopback card through the phone's own call-audio
// path (system.CallAudio with an [audio] table of device "alsa": hal/audio's
// ALSA ioctls, hw_params, writei, readi), plays the signal the test put in
// the initramfs into hw:Loopback,0 while it captures hw:Loopback,1, prints
// the capture on the serial console and powers off. The test, not this
// program, judges the capture.
//
// Only the test builds it (GOARCH=arm64) and nothing imports it. Its input
// is the initramfs the test built, so it trusts it no further than a test
// trusts its own fixture, but it still bounds what it reads (module list,
// signal length).
package main
