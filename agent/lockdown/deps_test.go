package lockdown

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps bans upward imports (agent, cmd, board), the call stack (media
// reports pinholes through the agent, it does not depend on lockdown and
// lockdown does not depend on it) and the SIP libraries.
func TestDeps(t *testing.T) {
	deptest.Check(t,
		"github.com/hardphone/hardphone/agent/sip",
		"github.com/hardphone/hardphone/agent/media",
		"github.com/hardphone/hardphone/agent/store",
		"github.com/hardphone/hardphone/cmd",
		"github.com/hardphone/hardphone/board",
		"github.com/hardphone/hardphone/update",
		"github.com/emiago",
		"github.com/pion",
	)
}
