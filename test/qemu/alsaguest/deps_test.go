package main

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the guest talks to the sound card only through the phone's
// own call-audio opener and its module loader.
func TestDeps(t *testing.T) {
	deptest.Imports(t, "agent/config", "hal/audio", "hal/kmod", "system")
}
