package resident

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: no package of this module (the standard library and
// golang.org/x/sys/unix only); the agent and PID 1 import it.
func TestDeps(t *testing.T) {
	deptest.Only(t)
}
