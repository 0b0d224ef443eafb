package approvaltest

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the suite tests through package approval's API only.
func TestDeps(t *testing.T) {
	deptest.Imports(t, "fleet/console/approval")
}
