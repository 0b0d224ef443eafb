package attest

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps keeps attest server-side and free of device code: the phone's
// agent, the board wiring, the hal and the test harness stay out of it.
func TestDeps(t *testing.T) {
	deptest.Check(t, "github.com/hardphone/hardphone/agent", "github.com/hardphone/hardphone/cmd",
		"github.com/hardphone/hardphone/board", "github.com/hardphone/hardphone/hal")
}
