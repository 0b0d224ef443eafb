package bundle

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the bundle reader is shared by the phone and the build host and
// knows nothing of slots, boot environments or the agent.
func TestDeps(t *testing.T) {
	deptest.Check(t, "github.com/hardphone/hardphone/agent", "github.com/hardphone/hardphone/cmd",
		"github.com/hardphone/hardphone/board", "github.com/hardphone/hardphone/hal",
		"go.etcd.io/bbolt", "github.com/emiago")
}
