package clienttest

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the fleet's CA and client, nothing else of ours.
func TestDeps(t *testing.T) {
	deptest.Imports(t, "fleet/ca", "fleet/client")
}
