package main

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the host tool needs the bundle format and the board
// descriptions (pure data, to build images), never the phone's agent or
// devices.
func TestDeps(t *testing.T) {
	deptest.Check(t, "github.com/hardphone/hardphone/agent", "github.com/hardphone/hardphone/hal",
		"github.com/emiago", "go.etcd.io/bbolt")
}
