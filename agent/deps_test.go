package agent

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the agent is handed its parts; it reaches no device and never
// the wiring or the commands above it. For the fleet it runs the phone's
// provisioning client, which speaks the protocol (fleet/api,
// fleet/client) and never links the server.
func TestDeps(t *testing.T) {
	deptest.Only(t, "agent/config", "agent/control", "agent/events", "crypto/eventlog", "agent/history", "agent/dialplan", "agent/lockdown", "agent/sip", "agent/media",
		"crypto/credstore", "crypto/policy", "update", "internal/resident", "hal/audio", "hal/nft", "hal/services", "hal/sysctl", "hal/tpm",
		"hal/blockdev", "agent/provision", "fleet/api", "fleet/client", "fleet/sealed", "internal/tcpack",
		"agent/uptane", "agent/fleetconfig")
}
