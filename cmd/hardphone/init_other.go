//go:build !linux

package main

// initIfPID1 does nothing off Linux: hardphone is PID 1 only on a Linux
// phone; elsewhere it is always an ordinary command.
func initIfPID1() {}
