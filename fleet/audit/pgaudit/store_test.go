package pgaudit

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/hardphone/hardphone/fleet/audit"
	"github.com/hardphone/hardphone/fleet/audit/audittest"
	"github.com/hardphone/hardphone/test"
)

var ctx = context.Background()

// dsnOf remembers each storage's database, for Reopen and Replica.
var dsnOf sync.Map

func open(t *testing.T, dsn string) *Storage {
	t.Helper()
	s, err := Open(ctx, dsn, 8)
	if err != nil {
		t.Fatalf("Open error %v", err)
	}
	dsnOf.Store(s, dsn)
	return s
}

// superuser runs SQL as the attacker with full rights on the database:
// the append-only triggers switched off for the statement's transaction.
func superuser(t *testing.T, s *Storage, sql string, args ...any) {
	t.Helper()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
		t.Fatalf("disable triggers: %v", err)
	}
	if _, err := tx.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

// TestPostgres starts one server for every test of the package, each
// with a database of its own.
func TestPostgres(t *testing.T) {
	srv := test.StartPostgres(t)
	t.Run("Conformance", func(t *testing.T) {
		audittest.Run(t, audittest.Backend{
			Open: func(t *testing.T) audit.Storage { return open(t, srv.NewDatabase(t)) },
			Reopen: func(t *testing.T, s audit.Storage) audit.Storage {
				dsn, _ := dsnOf.Load(s)
				s.(*Storage).Close()
				return open(t, dsn.(string))
			},
			Replica: func(t *testing.T, s audit.Storage) audit.Storage {
				dsn, _ := dsnOf.Load(s)
				return open(t, dsn.(string))
			},
			Overwrite: func(t *testing.T, s audit.Storage, idx int64, data []byte) {
				superuser(t, s.(*Storage), "UPDATE hpaudit.records SET data = $1 WHERE idx = $2", data, idx)
			},
			Truncate: func(t *testing.T, s audit.Storage, size int64) {
				superuser(t, s.(*Storage), "DELETE FROM hpaudit.records WHERE idx >= $1", size)
				superuser(t, s.(*Storage), "DELETE FROM hpaudit.hashes WHERE idx >= $1", tlog.StoredHashCount(size))
				superuser(t, s.(*Storage), "UPDATE hpaudit.tree SET size = $1", size)
			},
			Close: func(s audit.Storage) error { return s.(*Storage).Close() },
		})
	})
	t.Run("AppendOnlyTriggers", func(t *testing.T) { testTriggers(t, srv) })
	t.Run("SchemaTooNew", func(t *testing.T) { testSchemaTooNew(t, srv) })
	t.Run("ConcurrentMigrations", func(t *testing.T) { testConcurrentMigrations(t, srv) })
	t.Run("SharedPool", func(t *testing.T) { testSharedPool(t, srv) })
}

// testTriggers: the application's role cannot rewrite the log, and a
// refused statement leaves it whole.
func testTriggers(t *testing.T, srv *test.Postgres) {
	s := open(t, srv.NewDatabase(t))
	defer s.Close()
	key := audittest.NewKey(t, "audit.test/pg")
	l, _ := audit.New(s, key)
	for i := 0; i < 3; i++ {
		if _, err := l.Append(ctx, audittest.SampleEntry(i)); err != nil {
			t.Fatalf("Append error %v", err)
		}
	}
	if _, err := l.Checkpoint(ctx); err != nil {
		t.Fatalf("Checkpoint error %v", err)
	}
	for _, sql := range []string{
		"UPDATE hpaudit.records SET data = '\\x00' WHERE idx = 1",
		"DELETE FROM hpaudit.records WHERE idx = 2",
		"TRUNCATE hpaudit.records",
		"UPDATE hpaudit.hashes SET hash = hash WHERE idx = 0",
		"DELETE FROM hpaudit.hashes",
		"DELETE FROM hpaudit.checkpoints",
		"UPDATE hpaudit.checkpoints SET note = '\\x00'",
		"DELETE FROM hpaudit.tree",
	} {
		_, err := s.pool.Exec(ctx, sql)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: error %v, want the append-only refusal", sql, err)
		}
	}
	if _, err := l.Check(ctx); err != nil {
		t.Fatalf("Check after refused rewrites error %v", err)
	}
}

func testSchemaTooNew(t *testing.T, srv *test.Postgres) {
	dsn := srv.NewDatabase(t)
	s := open(t, dsn)
	if _, err := s.pool.Exec(ctx, "INSERT INTO hpaudit.schema_migrations (version, name) VALUES ($1, 'future')", SchemaVersion+1); err != nil {
		t.Fatalf("insert: %v", err)
	}
	s.Close()
	if _, err := Open(ctx, dsn, 2); !errors.Is(err, audit.ErrSchemaTooNew) {
		t.Fatalf("Open(newer schema) error %v, want ErrSchemaTooNew", err)
	}
}

// testConcurrentMigrations: replicas starting together on an empty
// database migrate it once.
func testConcurrentMigrations(t *testing.T, srv *test.Postgres) {
	dsn := srv.NewDatabase(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(ctx, dsn, 2)
			if err != nil {
				errs <- err
				return
			}
			s.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Open error %v", err)
	}
	s := open(t, dsn)
	defer s.Close()
	var n int
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM hpaudit.schema_migrations").Scan(&n); err != nil || n != len(migrations) {
		t.Fatalf("schema_migrations rows = %d, %v; want %d", n, err, len(migrations))
	}
}

// testSharedPool: New on a pool the caller owns (the fleet store's)
// leaves it open on Close.
func testSharedPool(t *testing.T, srv *test.Postgres) {
	owner := open(t, srv.NewDatabase(t))
	defer owner.Close()
	s, err := New(ctx, owner.pool)
	if err != nil {
		t.Fatalf("New error %v", err)
	}
	s.Close()
	if err := owner.pool.Ping(ctx); err != nil {
		t.Fatalf("pool after Close of a shared-pool storage: %v", err)
	}
}
