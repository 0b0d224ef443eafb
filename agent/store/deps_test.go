package store

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps keeps store a leaf: the state file knows none of its owners.
func TestDeps(t *testing.T) {
	deptest.Only(t)
}
