package dialplan

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the policy is data and a counter in the state file.
func TestDeps(t *testing.T) {
	deptest.Only(t)
}
