package audittest

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the suite tests through package audit's API only; it is
// test code, so testing is allowed (Imports, not Check).
func TestDeps(t *testing.T) {
	deptest.Imports(t, "fleet/audit")
}
