package server

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the server is fleet code and the crypto policy, never the
// phone's.
func TestDeps(t *testing.T) {
	deptest.Only(t, "fleet/api", "fleet/attest", "fleet/ca", "fleet/store", "crypto/policy")
}
