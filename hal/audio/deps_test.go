package audio

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps bans imports that would break the layering: hal imports nothing of
// hardphone's, and no production package links testing helpers.
func TestDeps(t *testing.T) {
	deptest.Only(t)
}
