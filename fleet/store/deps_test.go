package store

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps keeps the storage contract free of the phone's code and of the
// database drivers: implementations import it, not the other way.
func TestDeps(t *testing.T) {
	deptest.Check(t, "github.com/hardphone/hardphone/agent", "github.com/hardphone/hardphone/cmd",
		"github.com/hardphone/hardphone/board", "github.com/hardphone/hardphone/hal",
		"github.com/hardphone/hardphone/fleet/store/storetest", "go.etcd.io/bbolt", "github.com/jackc")
}
