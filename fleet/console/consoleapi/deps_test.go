package consoleapi

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the wire format needs nothing of ours.
func TestDeps(t *testing.T) {
	deptest.Only(t)
}
