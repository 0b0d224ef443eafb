package main

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the host tool needs the bundle format, never the phone's agent,
// devices or boards.
func TestDeps(t *testing.T) {
	deptest.Check(t, "github.com/hardphone/hardphone/agent", "github.com/hardphone/hardphone/hal",
		"github.com/hardphone/hardphone/board", "github.com/emiago", "go.etcd.io/bbolt")
}
