package server

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the server is fleet code and the crypto policy, never the
// phone's; the director brings the phone's config parser (to validate
// documents as the phone would) and the bundle reader (image targets);
// crypto/eventlog is the journal format it verifies exported events with.
// Of the admin console it knows only the JSON API's prefix
// (fleet/console/consoleapi): cmd/hpfleet builds the console and hands
// its handler over, so the server never links the console itself.
func TestDeps(t *testing.T) {
	deptest.Only(t, "fleet", "crypto/policy", "crypto/eventlog", "internal/tcpack", "internal/weekly", "agent/config", "agent/dialplan", "update/bundle")
	deptest.Imports(t, "fleet/adminauth", "fleet/api", "fleet/anomaly", "fleet/attest", "fleet/audit", "fleet/ca", "fleet/configdoc", "fleet/console/consoleapi", "fleet/director",
		"fleet/rollout", "fleet/store", "fleet/tufrepo", "crypto/policy", "crypto/eventlog")
}
