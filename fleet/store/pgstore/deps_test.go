package pgstore

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps keeps the PostgreSQL store away from the phone's code and from
// the other implementation.
func TestDeps(t *testing.T) {
	deptest.Check(t, "github.com/hardphone/hardphone/agent", "github.com/hardphone/hardphone/cmd",
		"github.com/hardphone/hardphone/board", "github.com/hardphone/hardphone/hal",
		"github.com/hardphone/hardphone/fleet/store/storetest", "github.com/hardphone/hardphone/fleet/store/boltstore",
		"go.etcd.io/bbolt")
}
