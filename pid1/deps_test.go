package pid1

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: PID 1 is built on the wiring; it reaches devices only through
// system and the agent only through its control protocol (and releases
// its own code pages through internal/resident).
func TestDeps(t *testing.T) {
	deptest.Imports(t, "system", "board", "agent/control", "internal/resident")
	deptest.Check(t, "github.com/hardphone/hardphone/cmd", "github.com/hardphone/hardphone/test")
}
