package main

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the phone's command talks to the wiring (system), the agent
// family (its config, control protocol and event types), the board
// descriptions, PID 1 and its own helpers; never a hal package, the
// updater or the crypto store directly: system builds those.
func TestDeps(t *testing.T) {
	deptest.Imports(t, "system", "agent", "board", "pid1", "internal/cli")
	deptest.Check(t, "github.com/hardphone/hardphone/test")
}
