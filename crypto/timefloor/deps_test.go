package timefloor

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the floor needs the state file's bbolt and nothing of ours.
func TestDeps(t *testing.T) {
	deptest.Only(t)
}
