package fleetconfig

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: a leaf below agent, like the other owners of a bucket.
func TestDeps(t *testing.T) {
	deptest.Only(t)
}
