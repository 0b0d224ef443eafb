package client

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the client links the wire types and the crypto policy, and
// neither the server's store nor the phone's code, so both hpctl and the
// phone may use it.
func TestDeps(t *testing.T) {
	deptest.Only(t, "fleet/api", "crypto/policy")
}
