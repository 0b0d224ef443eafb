package tcpack

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: a leaf.
func TestDeps(t *testing.T) {
	deptest.Imports(t)
}
