package audit

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the audit log is fleet code; of ours it uses only the crypto
// policy (the collector's TLS) and internal/tcpack (delivery). Never the phone's agent, the board, the
// hal, the fleet store or server (they import it, not the other way).
func TestDeps(t *testing.T) {
	deptest.Only(t, "crypto/policy", "internal/tcpack")
}
