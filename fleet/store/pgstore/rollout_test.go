package pgstore

import (
	"testing"

	"github.com/hardphone/hardphone/fleet/store"
	"github.com/hardphone/hardphone/fleet/store/storetest"
	"github.com/hardphone/hardphone/test"
)

// TestRolloutPostgres runs the rollout suite on its own PostgreSQL server,
// replicas included.
func TestRolloutPostgres(t *testing.T) {
	pg := test.StartPostgres(t)
	storetest.RunRollouts(t, storetest.Backend{
		Open: func(t *testing.T) store.Store { return open(t, pg.NewDatabase(t)) },
		Reopen: func(t *testing.T, s store.Store) store.Store {
			dsn := dsnOf(t, s)
			if err := s.Close(); err != nil {
				t.Fatalf("Close() error %v", err)
			}
			return open(t, dsn)
		},
		Replica: func(t *testing.T, s store.Store) store.Store { return open(t, dsnOf(t, s)) },
	})
}
