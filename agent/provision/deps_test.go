package provision

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the phone's provisioning reaches the credential store (and the
// TPM types it speaks), the fleet protocol and the crypto policy; never the
// fleet server or its store.
func TestDeps(t *testing.T) {
	deptest.Only(t, "crypto/credstore", "crypto/policy", "hal/tpm", "fleet/api", "fleet/client", "fleet/sealed")
}
