package sealed

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the format is shared by the phone and the fleet server, so it
// reaches nothing of ours.
func TestDeps(t *testing.T) {
	deptest.Only(t)
}
