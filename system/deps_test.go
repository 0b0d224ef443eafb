package system

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the wiring sits under cmd and pid1 and over everything else.
// Of the fleet it reaches only the protocol (fleet/api, fleet/client,
// through the phone's provisioning client), never the server's side.
func TestDeps(t *testing.T) {
	deptest.Check(t, "github.com/hardphone/hardphone/cmd", "github.com/hardphone/hardphone/pid1",
		"github.com/hardphone/hardphone/fleet/server", "github.com/hardphone/hardphone/fleet/store",
		"github.com/hardphone/hardphone/fleet/ca", "github.com/hardphone/hardphone/fleet/tufrepo",
		"github.com/hardphone/hardphone/fleet/audit", "github.com/hardphone/hardphone/fleet/adminauth",
		"github.com/hardphone/hardphone/fleet/attest", "github.com/jackc")
}
