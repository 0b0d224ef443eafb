package alert

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: fleet code, the crypto policy and the TCP acknowledgement
// probe; never the phone's.
func TestDeps(t *testing.T) {
	deptest.Only(t, "fleet/anomaly", "crypto/policy", "internal/tcpack")
}
