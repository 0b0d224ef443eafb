package integration

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the tests drive the phone as cmd does, through the wiring and
// the agent family; its one non-test file imports nothing, so no production
// code can reach the harness through it.
func TestDeps(t *testing.T) {
	deptest.Imports(t)
}
