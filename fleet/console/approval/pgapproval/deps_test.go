package pgapproval

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the PostgreSQL store knows package approval and nothing else of ours.
func TestDeps(t *testing.T) {
	deptest.Only(t, "fleet/console/approval")
}
