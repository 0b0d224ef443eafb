package director

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: fleet code, the phone's config parser through configdoc, and
// the bundle reader through tufrepo; never the phone's agent otherwise.
func TestDeps(t *testing.T) {
	deptest.Imports(t, "fleet/api", "fleet/configdoc", "fleet/registrar", "fleet/sealed", "fleet/store", "fleet/tufrepo")
	deptest.Only(t, "fleet", "agent/config", "agent/dialplan", "crypto/policy", "update/bundle")
}
