package main

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the host tool talks to the board descriptions (pure data, to
// build images), the bundle format, the bootchooser convention and the
// TUF repository tools; it never links the phone's agent, the wiring or
// device code. For the fleet it speaks the protocol (fleet/api,
// fleet/client) and makes a PKI (fleet/ca), never links the server or its
// store.
//
// An approver checks a configuration document it signs as the phone will
// read it (fleet/configdoc, with the phone's config parser agent/config
// and the dial plan it validates), and verifies audit exports
// (fleet/audit); nothing else of the phone's code. bbolt comes in with
// the dial plan package only (hpctl opens no database: the server's store
// stays banned).
func TestDeps(t *testing.T) {
	deptest.Imports(t, "board", "update/bundle", "update/bootchooser", "internal/cli", "fleet/api", "fleet/audit", "fleet/ca",
		"fleet/client", "fleet/configdoc", "fleet/tufrepo", "fleet/console/consoleapi", "fleet/console/consoleclient")
	deptest.Only(t, "board", "update", "internal", "crypto/policy", "fleet/api", "fleet/audit", "fleet/ca", "fleet/client",
		"fleet/configdoc", "fleet/tufrepo", "fleet/console/consoleapi", "fleet/console/consoleclient", "agent/config", "agent/dialplan")
	deptest.Check(t, "github.com/hardphone/hardphone/hal", "github.com/hardphone/hardphone/system", "github.com/emiago",
		"github.com/hardphone/hardphone/fleet/store", "github.com/hardphone/hardphone/fleet/server", "github.com/jackc")
}
