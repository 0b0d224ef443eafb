package agent

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the agent is handed its parts; it reaches no device and never
// the wiring or the commands above it.
func TestDeps(t *testing.T) {
	deptest.Only(t, "agent/config", "agent/control", "agent/events", "agent/history", "agent/dialplan", "agent/lockdown", "agent/sip", "agent/media",
		"crypto/credstore", "crypto/policy", "update", "hal/audio", "hal/nft", "hal/services", "hal/sysctl", "hal/tpm",
		"hal/blockdev")
}
