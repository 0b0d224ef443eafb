package fleetcrl

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the package is tests only; its one non-test file imports
// nothing, so no production code can reach the harness through it.
func TestDeps(t *testing.T) {
	deptest.Imports(t)
}
