package configdoc

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the phone's config parser (and what it needs) and nothing else
// of the phone.
func TestDeps(t *testing.T) {
	deptest.Only(t, "agent/config", "agent/dialplan", "crypto/policy")
}
