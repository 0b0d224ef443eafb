package main

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the fleet server links fleet code, the crypto policy (the
// audit export's TLS), the command-line helpers and the TCP delivery
// check of the syslog export; of the phone's code only its config parser
// (the director validates documents with it) and the bundle reader (image
// targets); never its agent, wiring or device code.
func TestDeps(t *testing.T) {
	deptest.Imports(t, "fleet", "internal/cli", "crypto/policy")
	deptest.Only(t, "fleet", "crypto/policy", "crypto/eventlog", "internal/cli", "internal/tcpack", "internal/weekly", "agent/config", "agent/dialplan", "update/bundle")
}
