package bootchooser

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the convention is data and text; it needs nothing of ours.
func TestDeps(t *testing.T) {
	deptest.Only(t)
}
