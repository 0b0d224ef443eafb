package tufrepo

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps keeps the repository tools on the server side: they read
// bundles through update/bundle and nothing else of hardphone's, never the
// phone's agent, its wiring or device code, and never the state file.
func TestDeps(t *testing.T) {
	deptest.Only(t, "update/bundle")
	deptest.Check(t, "go.etcd.io/bbolt")
}
