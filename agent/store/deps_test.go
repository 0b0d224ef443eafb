package store

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps keeps store at the agent level: it may reach crypto/credstore
// but never cmd, board or the SIP layer.
func TestDeps(t *testing.T) {
	deptest.Check(t, "github.com/hardphone/hardphone/cmd", "github.com/hardphone/hardphone/board",
		"github.com/hardphone/hardphone/agent/sip", "github.com/hardphone/hardphone/agent/media", "github.com/emiago")
}
