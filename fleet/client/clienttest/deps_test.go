package clienttest

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the fleet's CA and client, and the admin store's test helpers.
func TestDeps(t *testing.T) {
	deptest.Imports(t, "fleet/adminauth", "fleet/adminauth/authtest", "fleet/adminauth/boltauth", "fleet/ca", "fleet/client")
}
