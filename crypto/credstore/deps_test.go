package credstore

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps keeps credstore below agent: it may use hal/tpm and bbolt, never
// agent, cmd, board or the updater.
func TestDeps(t *testing.T) {
	deptest.Check(t, "github.com/hardphone/hardphone/agent", "github.com/hardphone/hardphone/cmd",
		"github.com/hardphone/hardphone/board", "github.com/hardphone/hardphone/update", "github.com/emiago")
}
