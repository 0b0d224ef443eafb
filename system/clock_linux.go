package system

import (
	"time"

	"golang.org/x/sys/unix"
)

// setClock sets CLOCK_REALTIME (PID 1 is root).
func setClock(t time.Time) error {
	tv := unix.NsecToTimeval(t.UnixNano())
	return unix.Settimeofday(&tv)
}
