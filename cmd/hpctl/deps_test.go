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
func TestDeps(t *testing.T) {
	deptest.Imports(t, "board", "update/bundle", "update/bootchooser", "internal/cli", "fleet/api", "fleet/ca", "fleet/client", "fleet/tufrepo")
	deptest.Check(t, "github.com/hardphone/hardphone/agent", "github.com/hardphone/hardphone/hal",
		"github.com/hardphone/hardphone/system", "github.com/emiago", "go.etcd.io/bbolt",
		"github.com/hardphone/hardphone/fleet/store", "github.com/hardphone/hardphone/fleet/server", "github.com/jackc")
}
