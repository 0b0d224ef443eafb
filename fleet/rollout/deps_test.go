package rollout

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: fleet code (and what the director brings), never the phone's
// agent otherwise.
func TestDeps(t *testing.T) {
	deptest.Imports(t, "fleet/api", "fleet/audit", "fleet/configdoc", "fleet/director", "fleet/store", "fleet/tufrepo", "internal/weekly")
	deptest.Only(t, "fleet", "agent/config", "agent/dialplan", "crypto/policy", "internal/tcpack", "internal/weekly", "update/bundle")
}
