package approval

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the two-person rule stands alone: nothing of ours.
func TestDeps(t *testing.T) {
	deptest.Only(t)
}
