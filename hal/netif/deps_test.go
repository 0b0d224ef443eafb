package netif

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps keeps hal/netif a leaf: hal imports nothing of hardphone's.
func TestDeps(t *testing.T) {
	deptest.Check(t, "github.com/hardphone/hardphone/agent", "github.com/hardphone/hardphone/update",
		"github.com/hardphone/hardphone/crypto", "github.com/hardphone/hardphone/board",
		"github.com/hardphone/hardphone/cmd", "github.com/hardphone/hardphone/hal/tpm")
}
