package pgaudit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/hardphone/hardphone/fleet/audit"
)

// SchemaVersion is the newest migration this package knows.
var SchemaVersion = migrations[len(migrations)-1].version

// migrationLock is the key of the session advisory lock migrations run
// under ("hpaudit" in ASCII).
const migrationLock int64 = 0x687061756469740a

const bootstrap = `
CREATE SCHEMA IF NOT EXISTS hpaudit;
CREATE TABLE IF NOT EXISTS hpaudit.schema_migrations (
	version    integer PRIMARY KEY CHECK (version > 0),
	name       text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
);`

type migration struct {
	version int
	name    string
	sql     string
}

// migrations: append, never edit a step that has shipped.
var migrations = []migration{
	{1, "audit log: tree size, records, stored hashes, checkpoints", `
CREATE TABLE hpaudit.tree (
	id   smallint PRIMARY KEY CHECK (id = 1),
	size bigint NOT NULL CHECK (size >= 0)
);
INSERT INTO hpaudit.tree (id, size) VALUES (1, 0);
CREATE TABLE hpaudit.records (
	idx  bigint PRIMARY KEY CHECK (idx >= 0),
	data bytea NOT NULL CHECK (octet_length(data) BETWEEN 1 AND 16384),
	seal bytea NOT NULL CHECK (octet_length(seal) <= 255)
);
CREATE TABLE hpaudit.hashes (
	idx  bigint PRIMARY KEY CHECK (idx >= 0),
	hash bytea NOT NULL CHECK (octet_length(hash) = 32)
);
CREATE TABLE hpaudit.checkpoints (
	size       bigint PRIMARY KEY CHECK (size > 0),
	note       bytea NOT NULL CHECK (octet_length(note) BETWEEN 1 AND 65536),
	created_at timestamptz NOT NULL DEFAULT now()
);
CREATE FUNCTION hpaudit.append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'hpaudit.%: the audit log is append-only', TG_TABLE_NAME USING ERRCODE = 'P0001';
END $$;
CREATE TRIGGER records_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON hpaudit.records
	FOR EACH STATEMENT EXECUTE FUNCTION hpaudit.append_only();
CREATE TRIGGER hashes_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON hpaudit.hashes
	FOR EACH STATEMENT EXECUTE FUNCTION hpaudit.append_only();
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON hpaudit.checkpoints
	FOR EACH STATEMENT EXECUTE FUNCTION hpaudit.append_only();
CREATE TRIGGER tree_no_delete BEFORE DELETE OR TRUNCATE ON hpaudit.tree
	FOR EACH STATEMENT EXECUTE FUNCTION hpaudit.append_only();
`},
}

// Storage is an audit.Storage on PostgreSQL.
type Storage struct {
	pool  *pgxpool.Pool // never nil
	owned bool
}

var _ audit.Storage = (*Storage)(nil)

// New keeps the log in pool's database (the fleet store's), migrating
// the hpaudit schema. A database with a newer schema is refused with
// audit.ErrSchemaTooNew. Close does not close pool.
func New(ctx context.Context, pool *pgxpool.Pool) (*Storage, error) {
	if pool == nil {
		return nil, errors.New("audit storage: nil pool")
	}
	s := &Storage{pool: pool}
	if err := s.migrate(ctx); err != nil {
		return nil, fmt.Errorf("audit storage: %w", err)
	}
	return s, nil
}

// errDSN stands for every DSN parse error, whose text may quote a password.
var errDSN = errors.New("DSN does not parse (its text is withheld: it may hold a password)")

// Open connects to dsn with a pool of its own (at most maxConns
// connections, 0 for pgxpool's default) and migrates.
func Open(ctx context.Context, dsn string, maxConns int) (*Storage, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("open audit storage: %w", errDSN)
	}
	if maxConns < 0 || maxConns > 1000 {
		return nil, fmt.Errorf("open audit storage: max connections %d: want 0..1000", maxConns)
	}
	if maxConns > 0 {
		cfg.MaxConns = int32(maxConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open audit storage: %w", err)
	}
	s, err := New(ctx, pool)
	if err != nil {
		pool.Close()
		return nil, err
	}
	s.owned = true
	return s, nil
}

// Close closes the pool if Open made it.
func (s *Storage) Close() error {
	if s.owned {
		s.pool.Close()
	}
	return nil
}

func (s *Storage) migrate(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLock); err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	defer func() {
		// Unlocking can only fail with the connection, which then ends
		// the session and its lock anyway.
		_, _ = conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", migrationLock)
	}()
	if _, err := conn.Exec(ctx, bootstrap); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	var have int
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM hpaudit.schema_migrations").Scan(&have); err != nil {
		return err
	}
	if have > SchemaVersion {
		return fmt.Errorf("database at audit schema %d, this binary knows %d: %w", have, SchemaVersion, audit.ErrSchemaTooNew)
	}
	for _, m := range migrations {
		if m.version <= have {
			continue
		}
		err := pgx.BeginFunc(ctx, conn.Conn(), func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO hpaudit.schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name)
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
		}
	}
	return nil
}

// maxTxAttempts bounds the retries of an append PostgreSQL aborted for a
// deadlock or serialization failure.
const maxTxAttempts = 4

func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// Append implements audit.Storage. The lock on the tree row is the
// serialisation point between replicas: the hashes build reads and the
// records it returns belong to exactly the size the row held.
func (s *Storage) Append(ctx context.Context, build audit.BuildFunc) (int64, error) {
	var first int64
	for attempt := 1; ; attempt++ {
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			var size int64
			if err := tx.QueryRow(ctx, "SELECT size FROM hpaudit.tree WHERE id = 1 FOR UPDATE").Scan(&size); err != nil {
				return fmt.Errorf("lock tree: %w", err)
			}
			recs, hashes, err := build(size, tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
				return readHashes(ctx, tx, idx)
			}))
			if err != nil {
				return err
			}
			n := int64(len(recs))
			if n == 0 || n > audit.MaxAppendBatch {
				return fmt.Errorf("append of %d records: %w", n, audit.ErrInvalid)
			}
			base := tlog.StoredHashCount(size)
			if want := tlog.StoredHashCount(size+n) - base; int64(len(hashes)) != want {
				return fmt.Errorf("append of %d records with %d hashes, want %d: %w", n, len(hashes), want, audit.ErrInvalid)
			}
			idx := make([]int64, n)
			data := make([][]byte, n)
			seals := make([][]byte, n)
			for i, r := range recs {
				idx[i], data[i], seals[i] = size+int64(i), r.Data, r.Seal
			}
			if _, err := tx.Exec(ctx, `INSERT INTO hpaudit.records (idx, data, seal)
				SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bytea[])`, idx, data, seals); err != nil {
				return fmt.Errorf("insert records: %w", err)
			}
			hidx := make([]int64, len(hashes))
			hval := make([][]byte, len(hashes))
			for i := range hashes {
				hidx[i], hval[i] = base+int64(i), hashes[i][:]
			}
			if _, err := tx.Exec(ctx, `INSERT INTO hpaudit.hashes (idx, hash)
				SELECT * FROM unnest($1::bigint[], $2::bytea[])`, hidx, hval); err != nil {
				return fmt.Errorf("insert hashes: %w", err)
			}
			if _, err := tx.Exec(ctx, "UPDATE hpaudit.tree SET size = $1 WHERE id = 1", size+n); err != nil {
				return fmt.Errorf("update size: %w", err)
			}
			first = size
			return nil
		})
		if err == nil {
			return first, nil
		}
		if !retryable(err) || attempt == maxTxAttempts {
			return 0, fmt.Errorf("append: %w", err)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(time.Duration(attempt) * 5 * time.Millisecond):
		}
	}
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func readHashes(ctx context.Context, q querier, idx []int64) ([]tlog.Hash, error) {
	if len(idx) > audit.MaxReadHashes {
		return nil, fmt.Errorf("read %d hashes, at most %d: %w", len(idx), audit.MaxReadHashes, audit.ErrInvalid)
	}
	out := make([]tlog.Hash, len(idx))
	if len(idx) == 0 {
		return out, nil
	}
	rows, err := q.Query(ctx, "SELECT idx, hash FROM hpaudit.hashes WHERE idx = ANY($1)", idx)
	if err != nil {
		return nil, fmt.Errorf("read hashes: %w", err)
	}
	got := make(map[int64][]byte, len(idx))
	for rows.Next() {
		var i int64
		var h []byte
		if err := rows.Scan(&i, &h); err != nil {
			rows.Close()
			return nil, err
		}
		got[i] = h
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i, x := range idx {
		h, ok := got[x]
		if !ok {
			return nil, fmt.Errorf("stored hash %d: %w", x, audit.ErrNotFound)
		}
		if len(h) != tlog.HashSize {
			return nil, fmt.Errorf("stored hash %d of %d bytes: %w", x, len(h), audit.ErrTampered)
		}
		copy(out[i][:], h)
	}
	return out, nil
}

// Size implements audit.Storage.
func (s *Storage) Size(ctx context.Context) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, "SELECT size FROM hpaudit.tree WHERE id = 1").Scan(&n); err != nil {
		return 0, fmt.Errorf("size: %w", err)
	}
	return n, nil
}

// ReadHashes implements audit.Storage.
func (s *Storage) ReadHashes(ctx context.Context, idx []int64) ([]tlog.Hash, error) {
	return readHashes(ctx, s.pool, idx)
}

// ReadRecords implements audit.Storage. Records at or beyond the size
// (a transaction not committed yet cannot show them; a superuser could
// insert them) are not returned.
func (s *Storage) ReadRecords(ctx context.Context, from int64, n int) ([]audit.Record, error) {
	if from < 0 || n < 1 || n > audit.MaxReadRecords {
		return nil, fmt.Errorf("read %d records from %d: %w", n, from, audit.ErrInvalid)
	}
	rows, err := s.pool.Query(ctx, `SELECT r.idx, r.data, r.seal FROM hpaudit.records r, hpaudit.tree t
		WHERE t.id = 1 AND r.idx >= $1 AND r.idx < t.size ORDER BY r.idx LIMIT $2`, from, n)
	if err != nil {
		return nil, fmt.Errorf("read records: %w", err)
	}
	var out []audit.Record
	next := from
	for rows.Next() {
		var i int64
		var r audit.Record
		if err := rows.Scan(&i, &r.Data, &r.Seal); err != nil {
			rows.Close()
			return nil, err
		}
		if i != next {
			rows.Close()
			return nil, fmt.Errorf("record %d missing below the size: %w", next, audit.ErrTampered)
		}
		next++
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read records: %w", err)
	}
	return out, nil
}

// AddCheckpoint implements audit.Storage.
func (s *Storage) AddCheckpoint(ctx context.Context, size int64, note []byte) error {
	if size < 1 || len(note) == 0 || len(note) > 64<<10 {
		return fmt.Errorf("add checkpoint of %d (%d bytes): %w", size, len(note), audit.ErrInvalid)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO hpaudit.checkpoints (size, note) VALUES ($1, $2)
		ON CONFLICT (size) DO NOTHING`, size, note); err != nil {
		return fmt.Errorf("add checkpoint: %w", err)
	}
	return nil
}

// Checkpoints implements audit.Storage.
func (s *Storage) Checkpoints(ctx context.Context, from int64, n int) ([]audit.StoredCheckpoint, error) {
	if n < 1 || n > audit.MaxReadRecords {
		return nil, fmt.Errorf("read %d checkpoints: %w", n, audit.ErrInvalid)
	}
	rows, err := s.pool.Query(ctx, "SELECT size, note FROM hpaudit.checkpoints WHERE size >= $1 ORDER BY size LIMIT $2", from, n)
	if err != nil {
		return nil, fmt.Errorf("read checkpoints: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (audit.StoredCheckpoint, error) {
		var c audit.StoredCheckpoint
		err := r.Scan(&c.Size, &c.Note)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("read checkpoints: %w", err)
	}
	return out, nil
}

// LatestCheckpoint implements audit.Storage.
func (s *Storage) LatestCheckpoint(ctx context.Context) (audit.StoredCheckpoint, error) {
	var c audit.StoredCheckpoint
	err := s.pool.QueryRow(ctx, "SELECT size, note FROM hpaudit.checkpoints ORDER BY size DESC LIMIT 1").Scan(&c.Size, &c.Note)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, fmt.Errorf("no checkpoint stored: %w", audit.ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("latest checkpoint: %w", err)
	}
	return c, nil
}
