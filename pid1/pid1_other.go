//go:build !linux

package pid1

// RunIfPID1 does nothing off Linux: hardphone is PID 1 only on a Linux
// phone; elsewhere it is always an ordinary command.
func RunIfPID1() {}
