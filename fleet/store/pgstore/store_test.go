package pgstore

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/hardphone/hardphone/fleet/store"
	"github.com/hardphone/hardphone/fleet/store/storetest"
	"github.com/hardphone/hardphone/test"
)

var ctx = context.Background()

// dsns remembers the DSN of each store the tests opened, for Reopen and
// Replica: a Store itself keeps no DSN (it holds the password).
var dsns sync.Map // *Store -> string

func open(t *testing.T, dsn string) *Store {
	t.Helper()
	s, err := Open(ctx, dsn)
	if err != nil {
		t.Fatalf("Open error %v", err)
	}
	dsns.Store(s, dsn)
	return s
}

func dsnOf(t *testing.T, s store.Store) string {
	t.Helper()
	v, ok := dsns.Load(s.(*Store))
	if !ok {
		t.Fatalf("store %p not opened by these tests", s)
	}
	return v.(string)
}

// TestPostgres runs everything against one PostgreSQL server (started
// once: initdb costs seconds); each test gets its own database.
func TestPostgres(t *testing.T) {
	pg := test.StartPostgres(t)
	t.Run("Conformance", func(t *testing.T) {
		storetest.Run(t, storetest.Backend{
			Open: func(t *testing.T) store.Store { return open(t, pg.NewDatabase(t)) },
			Reopen: func(t *testing.T, s store.Store) store.Store {
				dsn := dsnOf(t, s)
				if err := s.Close(); err != nil {
					t.Fatalf("Close() error %v", err)
				}
				return open(t, dsn)
			},
			Replica: func(t *testing.T, s store.Store) store.Store { return open(t, dsnOf(t, s)) },
			OpenTooNew: func(t *testing.T, s store.Store) error {
				dsn := dsnOf(t, s)
				if err := s.Close(); err != nil {
					t.Fatalf("Close() error %v", err)
				}
				exec(t, dsn, "INSERT INTO hpfleet.schema_migrations (version, name) VALUES ($1, 'from the future')", SchemaVersion+1)
				s2, err := Open(ctx, dsn)
				if err == nil {
					s2.Close()
				}
				return err
			},
			StoredReports: func(t *testing.T, s store.Store, id store.DeviceID) int {
				var n int
				if err := s.(*Store).pool.QueryRow(ctx, "SELECT count(*) FROM hpfleet.reports WHERE device_id = $1", string(id)).Scan(&n); err != nil {
					t.Fatalf("count reports: %v", err)
				}
				return n
			},
		})
	})
	t.Run("ReplicasStartTogether", func(t *testing.T) { testReplicasStartTogether(t, pg) })
	t.Run("MigrationAtomic", func(t *testing.T) { testMigrationAtomic(t, pg) })
	t.Run("DSNNotLeaked", func(t *testing.T) { testDSNNotLeaked(t, pg) })
	t.Run("SharedDatabase", func(t *testing.T) { testSharedDatabase(t, pg) })
}

// exec runs one statement on its own connection.
func exec(t *testing.T, dsn, sql string, args ...any) {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// testReplicasStartTogether opens several replicas on a fresh database at
// once: the advisory lock makes one migrate, the others find it done, and
// every step is recorded once.
func testReplicasStartTogether(t *testing.T, pg *test.Postgres) {
	dsn := pg.NewDatabase(t)
	const n = 6
	var wg sync.WaitGroup
	errs := make([]error, n)
	stores := make([]*Store, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			stores[i], errs[i] = Open(ctx, dsn)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: Open error %v", i, err)
		}
		defer stores[i].Close()
	}
	var rows, max int
	if err := stores[0].pool.QueryRow(ctx, "SELECT count(*), max(version) FROM hpfleet.schema_migrations").Scan(&rows, &max); err != nil {
		t.Fatalf("read migrations: %v", err)
	}
	if rows != len(migrations) || max != SchemaVersion {
		t.Fatalf("schema_migrations after %d concurrent opens: %d rows, max %d; want %d, %d", n, rows, max, len(migrations), SchemaVersion)
	}
	// They all work on the one schema.
	for i, s := range stores {
		if _, err := s.NextCRLNumber(ctx); err != nil {
			t.Fatalf("replica %d: NextCRLNumber error %v", i, err)
		}
	}
}

// testMigrationAtomic: a step that fails leaves the database at the
// version before it, with nothing of the step applied, and the lock free.
func testMigrationAtomic(t *testing.T, pg *test.Postgres) {
	dsn := pg.NewDatabase(t)
	saved := migrations
	t.Cleanup(func() { migrations, SchemaVersion = saved, saved[len(saved)-1].version })
	migrations = append(append([]migration(nil), saved...), migration{len(saved) + 1, "broken",
		"CREATE TABLE hpfleet.half_done (x int); SELECT 1/0;"})
	SchemaVersion = len(migrations)
	if _, err := Open(ctx, dsn); err == nil || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("Open with a failing migration error = %v, want it named", err)
	}
	migrations, SchemaVersion = saved, saved[len(saved)-1].version
	s := open(t, dsn) // the lock was released: this does not hang
	defer s.Close()
	var version int
	var half bool
	if err := s.pool.QueryRow(ctx, `SELECT (SELECT max(version) FROM hpfleet.schema_migrations),
		EXISTS (SELECT 1 FROM information_schema.tables WHERE table_schema = 'hpfleet' AND table_name = 'half_done')`).
		Scan(&version, &half); err != nil {
		t.Fatalf("read schema: %v", err)
	}
	if version != SchemaVersion || half {
		t.Fatalf("after a failed step: version %d, half_done table %v; want %d, false", version, half, SchemaVersion)
	}
}

// testDSNNotLeaked: neither a DSN that does not parse nor one that does
// not connect puts its password in an error.
func testDSNNotLeaked(t *testing.T, pg *test.Postgres) {
	const secret = "s3cr3t-Pa55"
	for _, dsn := range []string{
		"postgres://admin:" + secret + "@[::1:5432/db",
		"host=/nonexistent user=x password=" + secret + " port=notaport",
		"host=/nonexistent/socket user=x password=" + secret + " dbname=x connect_timeout=1",
	} {
		_, err := Open(ctx, dsn)
		if err == nil {
			t.Fatalf("Open(bad DSN) = nil error")
		}
		if strings.Contains(err.Error(), secret) {
			t.Fatalf("Open(bad DSN) error %q holds the password", err)
		}
	}
	// A wrong password is refused by the server.
	cfg, err := pgx.ParseConfig(pg.DSN)
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	bad := strings.Replace(pg.DSN, "password="+cfg.Password, "password="+secret, 1)
	if _, err := Open(ctx, bad); err == nil || strings.Contains(err.Error(), secret) {
		t.Fatalf("Open(wrong password) error = %v, want a refusal without the password", err)
	}
}

// testSharedDatabase: the tables live in schema hpfleet, next to (not
// among) another service's tables of the same name.
func testSharedDatabase(t *testing.T, pg *test.Postgres) {
	dsn := pg.NewDatabase(t)
	exec(t, dsn, "CREATE TABLE public.devices (username text)")
	s := open(t, dsn)
	defer s.Close()
	if _, err := s.ListDevices(ctx, store.PageRequest{Limit: 1}); err != nil {
		t.Fatalf("ListDevices beside another service's devices table: %v", err)
	}
	if err := s.DeleteSetting(ctx, "x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DeleteSetting(unset) error = %v, want ErrNotFound", err)
	}
}

// TestMigrationsNumbered keeps the migration list 1, 2, 3, ...
func TestMigrationsNumbered(t *testing.T) {
	for i, m := range migrations {
		if m.version != i+1 {
			t.Fatalf("migrations[%d].version = %d, want %d", i, m.version, i+1)
		}
	}
}
