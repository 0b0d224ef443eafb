package cli

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the commands' helpers need nothing of ours.
func TestDeps(t *testing.T) {
	deptest.Only(t)
}
