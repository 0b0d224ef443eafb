package history

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: history stores through an interface; it needs nothing of ours.
func TestDeps(t *testing.T) {
	deptest.Only(t)
}
