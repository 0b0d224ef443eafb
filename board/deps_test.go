package board

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps keeps board pure data: the host tool (cmd/hpctl) imports it and
// must not link the agent, device code or the SIP stack through it.
func TestDeps(t *testing.T) {
	deptest.Check(t, "github.com/hardphone/hardphone/agent", "github.com/hardphone/hardphone/hal",
		"github.com/hardphone/hardphone/crypto", "github.com/hardphone/hardphone/update",
		"github.com/hardphone/hardphone/cmd", "github.com/emiago", "go.etcd.io/bbolt")
}
