package weekly

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the standard library only.
func TestDeps(t *testing.T) {
	deptest.Only(t)
}
