package consoleclient

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the client links the wire types and the crypto policy, never
// the server (adminauth, the stores).
func TestDeps(t *testing.T) {
	deptest.Only(t, "fleet/console/consoleapi", "crypto/policy")
}
