package api

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps: the wire types are shared by the phone and the server, so they
// reach nothing of ours at all.
func TestDeps(t *testing.T) {
	deptest.Only(t)
}
