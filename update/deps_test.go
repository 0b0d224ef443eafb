package update

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: update sits below agent and above hal; the boot environment and
// the TPM come in through interfaces, never by import.
func TestDeps(t *testing.T) {
	deptest.Check(t, "github.com/hardphone/hardphone/agent", "github.com/hardphone/hardphone/cmd",
		"github.com/hardphone/hardphone/board", "github.com/hardphone/hardphone/hal/ubootenv",
		"github.com/hardphone/hardphone/hal/tpm", "github.com/hardphone/hardphone/crypto/credstore",
		"github.com/emiago")
}
