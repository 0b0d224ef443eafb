package g722

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps keeps g722 a leaf codec: it may be imported by agent/media but
// reaches no other package of ours (no agent package, binary, board
// wiring, hal or test harness), and links no testing helpers.
func TestDeps(t *testing.T) {
	deptest.Only(t)
}
