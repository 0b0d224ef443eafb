//go:build !linux

package test

import (
	"fmt"
	"testing"
	"time"
)

// NetemSpec describes an impairment; see the Linux StartNetem.
type NetemSpec struct {
	Delay, Jitter time.Duration
	Loss          float64
	Seed          uint64
}

func (s NetemSpec) String() string {
	return fmt.Sprintf("delay %v ± %v, loss %.1f %%", s.Delay, s.Jitter, 100*s.Loss)
}

// Netem is the Linux emulator's handle.
type Netem struct{ Spec NetemSpec }

// StartNetem needs Linux's nfnetlink_queue: it skips, or fails under CI.
func StartNetem(t testing.TB, iface string, spec NetemSpec) *Netem {
	t.Helper()
	missing(t, "network emulation needs Linux nfnetlink_queue")
	return nil
}
