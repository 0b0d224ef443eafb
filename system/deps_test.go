package system

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the wiring sits under cmd and pid1 and over everything else.
func TestDeps(t *testing.T) {
	deptest.Check(t, "github.com/hardphone/hardphone/cmd", "github.com/hardphone/hardphone/pid1",
		"github.com/hardphone/hardphone/fleet")
}
