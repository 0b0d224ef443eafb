package events

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps keeps events at the agent level: it may reach crypto/policy and
// bbolt, never cmd, board, the SIP or media layers or the device code.
func TestDeps(t *testing.T) {
	deptest.Check(t, "github.com/hardphone/hardphone/cmd", "github.com/hardphone/hardphone/board",
		"github.com/hardphone/hardphone/agent/sip", "github.com/hardphone/hardphone/agent/media",
		"github.com/hardphone/hardphone/hal", "github.com/emiago", "github.com/leodido")
}
