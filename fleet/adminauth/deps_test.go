package adminauth

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: admin authentication is fleet code and stands alone: nothing
// of ours but the time windows it shares with rollouts (internal/weekly),
// and never the phone's agent, the board or the hal.
func TestDeps(t *testing.T) {
	deptest.Only(t, "internal/weekly")
}
