package anomaly

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the detector is fleet code that imports nothing of ours: not
// the phone's agent (its event kinds are mirrored, kept in step by
// TestKindsMatchPhone), not the fleet's store or server (they import it).
func TestDeps(t *testing.T) {
	deptest.Only(t)
}
