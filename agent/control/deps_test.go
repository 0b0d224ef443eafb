package control

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the protocol reaches the status types of sip and update, never
// the agent, the wiring or a device.
func TestDeps(t *testing.T) {
	deptest.Only(t, "agent/sip", "agent/config", "agent/media", "agent/events", "crypto/eventlog", "fleet/api", "agent/history", "agent/dialplan", "update", "crypto/policy", "hal/audio", "hal/blockdev", "internal/tcpack")
}
