package sim

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the simulator feeds the detector and nothing else; the server
// never imports it.
func TestDeps(t *testing.T) {
	deptest.Only(t, "fleet/anomaly")
}
