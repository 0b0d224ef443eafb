package pgapproval

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/hardphone/hardphone/fleet/console/approval"
	"github.com/hardphone/hardphone/fleet/console/approval/approvaltest"
	"github.com/hardphone/hardphone/test"
)

var ctx = context.Background()

var dsnOf sync.Map

func open(t *testing.T, dsn string) *Store {
	t.Helper()
	s, err := Open(ctx, dsn, 8)
	if err != nil {
		t.Fatalf("Open error %v", err)
	}
	dsnOf.Store(s, dsn)
	return s
}

// TestPostgres starts one server for the package, a database per test.
func TestPostgres(t *testing.T) {
	srv := test.StartPostgres(t)
	t.Run("Conformance", func(t *testing.T) {
		approvaltest.Run(t, approvaltest.Backend{
			Open: func(t *testing.T) approval.Store { return open(t, srv.NewDatabase(t)) },
			Replica: func(t *testing.T, s approval.Store) approval.Store {
				dsn, _ := dsnOf.Load(s)
				return open(t, dsn.(string))
			},
			Close: func(s approval.Store) error { return s.(*Store).Close() },
		})
	})
	t.Run("SchemaTooNew", func(t *testing.T) {
		dsn := srv.NewDatabase(t)
		s := open(t, dsn)
		if _, err := s.pool.Exec(ctx, "INSERT INTO hpapproval.schema_migrations (version, name) VALUES ($1, 'future')", SchemaVersion+1); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if _, err := Open(ctx, dsn, 2); !errors.Is(err, approval.ErrSchemaTooNew) {
			t.Fatalf("Open(newer schema) error %v, want ErrSchemaTooNew", err)
		}
	})
}
