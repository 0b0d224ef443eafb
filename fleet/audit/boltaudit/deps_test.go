package boltaudit

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the bbolt storage knows package audit and nothing else of ours.
func TestDeps(t *testing.T) {
	deptest.Only(t, "fleet/audit", "crypto/policy", "internal/tcpack")
}
