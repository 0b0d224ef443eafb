package rollouttest

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the simulated phone is the phone's own client code (uptane,
// the credential store on its TPM) talking the fleet protocol; never the
// server's code or the test harness (the caller starts the swtpm).
// It is test code: testing is its business.
func TestDeps(t *testing.T) {
	deptest.Imports(t, "agent/uptane", "crypto/credstore", "fleet/api", "fleet/client", "hal/tpm")
}
