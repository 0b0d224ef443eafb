package main

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the fleet server links fleet code, the crypto policy and the
// command-line helpers; never the phone's agent, wiring or device code.
func TestDeps(t *testing.T) {
	deptest.Imports(t, "fleet", "internal/cli")
	deptest.Only(t, "fleet", "crypto/policy", "internal/cli")
}
