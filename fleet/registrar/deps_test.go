package registrar

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the registrar's client needs nothing of ours.
func TestDeps(t *testing.T) {
	deptest.Only(t)
}
