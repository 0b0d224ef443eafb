package pgauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hardphone/hardphone/fleet/adminauth"
)

// Advisory lock keys: migrations, and inserting a new throttle key.
const (
	migrationLock int64 = 0x6870617574680001
	throttleLock  int64 = 0x6870617574680002
)

const bootstrap = `
CREATE SCHEMA IF NOT EXISTS hpadminauth;
CREATE TABLE IF NOT EXISTS hpadminauth.schema_migrations (
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
	{1, "admins, sessions, throttles", `
CREATE TABLE hpadminauth.admins (
	id   text COLLATE "C" PRIMARY KEY CHECK (id ~ '^[0-9a-f]{32}$'),
	name text COLLATE "C" NOT NULL UNIQUE CHECK (octet_length(name) BETWEEN 1 AND 64),
	doc  bytea NOT NULL CHECK (octet_length(doc) <= 65536)
);
CREATE TABLE hpadminauth.sessions (
	hash       bytea PRIMARY KEY CHECK (octet_length(hash) = 32),
	admin_id   text COLLATE "C" NOT NULL REFERENCES hpadminauth.admins (id) ON DELETE CASCADE,
	created_at timestamptz NOT NULL,
	expires    timestamptz NOT NULL,
	doc        bytea NOT NULL CHECK (octet_length(doc) <= 16384)
);
CREATE INDEX sessions_admin ON hpadminauth.sessions (admin_id, created_at);
CREATE INDEX sessions_expires ON hpadminauth.sessions (expires);
CREATE TABLE hpadminauth.throttles (
	key          text COLLATE "C" PRIMARY KEY CHECK (octet_length(key) BETWEEN 1 AND 128),
	locked_until timestamptz NOT NULL,
	doc          bytea NOT NULL CHECK (octet_length(doc) <= 1024)
);
CREATE INDEX throttles_locked_until ON hpadminauth.throttles (locked_until);
`},
}

// SchemaVersion is the newest migration this package knows.
var SchemaVersion = migrations[len(migrations)-1].version

// Store is an adminauth.Store on PostgreSQL.
type Store struct {
	pool  *pgxpool.Pool
	owned bool
}

var (
	_ adminauth.Store     = (*Store)(nil)
	_ adminauth.Exclusive = (*Store)(nil)
)

// New keeps the records in pool's database, migrating hpadminauth. Close
// leaves pool open.
func New(ctx context.Context, pool *pgxpool.Pool) (*Store, error) {
	if pool == nil {
		return nil, errors.New("adminauth store: nil pool")
	}
	s := &Store{pool: pool}
	if err := s.migrate(ctx); err != nil {
		return nil, fmt.Errorf("adminauth store: %w", err)
	}
	return s, nil
}

var errDSN = errors.New("DSN does not parse (its text is withheld: it may hold a password)")

// Open connects to dsn with a pool of its own (0: pgxpool's default size).
func Open(ctx context.Context, dsn string, maxConns int) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("open adminauth store: %w", errDSN)
	}
	if maxConns < 0 || maxConns > 1000 {
		return nil, fmt.Errorf("open adminauth store: max connections %d: want 0..1000", maxConns)
	}
	if maxConns > 0 {
		cfg.MaxConns = int32(maxConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open adminauth store: %w", err)
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
func (s *Store) Close() error {
	if s.owned {
		s.pool.Close()
	}
	return nil
}

// exclusiveLock is the advisory lock Exclusive holds ("hpadmin" + 1).
const exclusiveLock int64 = 0x687061646d696e01

// Exclusive runs fn while no other Exclusive of any replica or process
// sharing the database runs (a PostgreSQL advisory lock on one pooled
// connection, released when fn returns or the connection ends): for a
// check-then-act on the admins, such as hpfleet admin bootstrap's "fewer
// than two security admins, then create one".
//
// A waiter holds no connection while it waits (it tries the lock and
// gives its connection back between tries), so waiters can never take
// the pool's connections from the holder's fn.
func (s *Store) Exclusive(ctx context.Context, fn func(context.Context) error) error {
	wait := 10 * time.Millisecond
	for {
		conn, err := s.pool.Acquire(ctx)
		if err != nil {
			return fmt.Errorf("exclusive: %w", err)
		}
		var got bool
		if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", exclusiveLock).Scan(&got); err != nil {
			conn.Release()
			return fmt.Errorf("exclusive lock: %w", err)
		}
		if got {
			defer conn.Release()
			defer func() {
				// Only fails with the connection, whose end releases the lock.
				_, _ = conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", exclusiveLock)
			}()
			return fn(ctx)
		}
		conn.Release()
		select {
		case <-ctx.Done():
			return fmt.Errorf("exclusive lock: %w", ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 200*time.Millisecond)
	}
}

func (s *Store) migrate(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLock); err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	defer func() {
		// Only fails with the connection, whose end releases the lock.
		_, _ = conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", migrationLock)
	}()
	if _, err := conn.Exec(ctx, bootstrap); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	var have int
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM hpadminauth.schema_migrations").Scan(&have); err != nil {
		return err
	}
	if have > SchemaVersion {
		return fmt.Errorf("database at adminauth schema %d, this binary knows %d: %w", have, SchemaVersion, adminauth.ErrSchemaTooNew)
	}
	for _, m := range migrations {
		if m.version <= have {
			continue
		}
		err := pgx.BeginFunc(ctx, conn.Conn(), func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO hpadminauth.schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name)
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
		}
	}
	return nil
}

const maxTxAttempts = 4

// tx runs fn in a transaction, retried on deadlock or serialization
// failure (fn only touches the database and its own results).
func (s *Store) tx(ctx context.Context, fn func(pgx.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := pgx.BeginFunc(ctx, s.pool, fn)
		var pe *pgconn.PgError
		if err == nil || !errors.As(err, &pe) || (pe.Code != "40001" && pe.Code != "40P01") || attempt == maxTxAttempts {
			return classify(err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt) * 5 * time.Millisecond):
		}
	}
}

func classify(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505":
			return fmt.Errorf("%w (%s): %w", adminauth.ErrExists, pe.ConstraintName, err)
		case "23514", "23502":
			return fmt.Errorf("%w (%s): %w", adminauth.ErrInvalid, pe.ConstraintName, err)
		case "23503":
			return fmt.Errorf("%w (%s): %w", adminauth.ErrNotFound, pe.ConstraintName, err)
		}
	}
	return err
}

// CreateAdmin implements adminauth.Store.
func (s *Store) CreateAdmin(ctx context.Context, a adminauth.Admin) error {
	if err := a.Validate(); err != nil {
		return err
	}
	doc, err := json.Marshal(a)
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, "INSERT INTO hpadminauth.admins (id, name, doc) VALUES ($1, $2, $3)", a.ID, a.Name, doc)
	if err != nil {
		return fmt.Errorf("create admin %s: %w", a.Name, classify(err))
	}
	return nil
}

func scanAdmin(row pgx.Row) (adminauth.Admin, error) {
	var a adminauth.Admin
	var doc []byte
	if err := row.Scan(&doc); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return a, fmt.Errorf("admin: %w", adminauth.ErrNotFound)
		}
		return a, err
	}
	if err := json.Unmarshal(doc, &a); err != nil {
		return a, fmt.Errorf("admin record: %w", err)
	}
	return a, nil
}

// AdminByName implements adminauth.Store.
func (s *Store) AdminByName(ctx context.Context, name string) (adminauth.Admin, error) {
	return scanAdmin(s.pool.QueryRow(ctx, "SELECT doc FROM hpadminauth.admins WHERE name = $1", name))
}

// AdminByID implements adminauth.Store.
func (s *Store) AdminByID(ctx context.Context, id string) (adminauth.Admin, error) {
	return scanAdmin(s.pool.QueryRow(ctx, "SELECT doc FROM hpadminauth.admins WHERE id = $1", id))
}

// ListAdmins returns up to limit (1..adminauth.MaxListAdmins) admins in
// name order: the admin console's list. It is not part of
// adminauth.Store: logins never list.
func (s *Store) ListAdmins(ctx context.Context, limit int) ([]adminauth.Admin, error) {
	if limit < 1 || limit > adminauth.MaxListAdmins {
		return nil, fmt.Errorf("list admins: limit %d, want 1..%d: %w", limit, adminauth.MaxListAdmins, adminauth.ErrInvalid)
	}
	rows, err := s.pool.Query(ctx, "SELECT doc FROM hpadminauth.admins ORDER BY name LIMIT $1", limit)
	if err != nil {
		return nil, fmt.Errorf("list admins: %w", err)
	}
	defer rows.Close()
	var out []adminauth.Admin
	for rows.Next() {
		a, err := scanAdmin(rows)
		if err != nil {
			return nil, fmt.Errorf("list admins: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list admins: %w", err)
	}
	return out, nil
}

// UpdateAdmin implements adminauth.Store.
func (s *Store) UpdateAdmin(ctx context.Context, id string, fn func(*adminauth.Admin) error) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		a, err := scanAdmin(tx.QueryRow(ctx, "SELECT doc FROM hpadminauth.admins WHERE id = $1 FOR UPDATE", id))
		if err != nil {
			return err
		}
		n := a
		if err := fn(&n); err != nil {
			return err
		}
		if n.ID != a.ID || n.Name != a.Name {
			return fmt.Errorf("update admin: ID or name changed: %w", adminauth.ErrInvalid)
		}
		if err := n.Validate(); err != nil {
			return err
		}
		doc, err := json.Marshal(n)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "UPDATE hpadminauth.admins SET doc = $2 WHERE id = $1", id, doc)
		return err
	})
}

type storedSession struct {
	Kind           uint8     `json:"k"`
	Fingerprint    string    `json:"f"`
	LastSeen       time.Time `json:"l"`
	SecondFactorAt time.Time `json:"s"`
	Ceremony       []byte    `json:"x,omitempty"`
	Failures       int       `json:"n,omitempty"`
}

func sessionDoc(x adminauth.Session) ([]byte, error) {
	return json.Marshal(storedSession{uint8(x.Kind), x.Fingerprint, x.LastSeen, x.SecondFactorAt, x.Ceremony, x.Failures})
}

func scanSession(row pgx.Row) (adminauth.Session, error) {
	var x adminauth.Session
	var h, doc []byte
	if err := row.Scan(&h, &x.AdminID, &x.CreatedAt, &x.Expires, &doc); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return x, fmt.Errorf("session: %w", adminauth.ErrNotFound)
		}
		return x, err
	}
	var r storedSession
	if err := json.Unmarshal(doc, &r); err != nil {
		return x, fmt.Errorf("session record: %w", err)
	}
	copy(x.Hash[:], h)
	x.Kind, x.Fingerprint, x.LastSeen, x.SecondFactorAt, x.Ceremony, x.Failures =
		adminauth.SessionKind(r.Kind), r.Fingerprint, r.LastSeen, r.SecondFactorAt, r.Ceremony, r.Failures
	return x, nil
}

const sessionCols = "hash, admin_id, created_at, expires, doc"

// CreateSession implements adminauth.Store. The admin's row is locked so
// two replicas creating sessions for one admin keep the bound.
func (s *Store) CreateSession(ctx context.Context, x adminauth.Session) error {
	if err := x.Validate(); err != nil {
		return err
	}
	doc, err := sessionDoc(x)
	if err != nil {
		return err
	}
	return s.tx(ctx, func(tx pgx.Tx) error {
		var id string
		if err := tx.QueryRow(ctx, "SELECT id FROM hpadminauth.admins WHERE id = $1 FOR UPDATE", x.AdminID).Scan(&id); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("session for admin %s: %w", x.AdminID, adminauth.ErrNotFound)
			}
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM hpadminauth.sessions WHERE hash IN (
			SELECT hash FROM hpadminauth.sessions WHERE admin_id = $1
			ORDER BY created_at DESC OFFSET $2)`, x.AdminID, adminauth.MaxSessionsPerAdmin-1); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "INSERT INTO hpadminauth.sessions ("+sessionCols+") VALUES ($1, $2, $3, $4, $5)",
			x.Hash[:], x.AdminID, x.CreatedAt, x.Expires, doc)
		return err
	})
}

// SessionByHash implements adminauth.Store.
func (s *Store) SessionByHash(ctx context.Context, h adminauth.TokenHash) (adminauth.Session, error) {
	return scanSession(s.pool.QueryRow(ctx, "SELECT "+sessionCols+" FROM hpadminauth.sessions WHERE hash = $1", h[:]))
}

// UpdateSession implements adminauth.Store.
func (s *Store) UpdateSession(ctx context.Context, h adminauth.TokenHash, fn func(*adminauth.Session) error) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		x, err := scanSession(tx.QueryRow(ctx, "SELECT "+sessionCols+" FROM hpadminauth.sessions WHERE hash = $1 FOR UPDATE", h[:]))
		if err != nil {
			return err
		}
		admin, created := x.AdminID, x.CreatedAt
		if err := fn(&x); err != nil {
			return err
		}
		if x.Hash != h || x.AdminID != admin || !x.CreatedAt.Equal(created) {
			return fmt.Errorf("update session: hash, admin or creation changed: %w", adminauth.ErrInvalid)
		}
		if err := x.Validate(); err != nil {
			return err
		}
		doc, err := sessionDoc(x)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "UPDATE hpadminauth.sessions SET expires = $2, doc = $3 WHERE hash = $1", h[:], x.Expires, doc)
		return err
	})
}

// DeleteSession implements adminauth.Store.
func (s *Store) DeleteSession(ctx context.Context, h adminauth.TokenHash) error {
	tag, err := s.pool.Exec(ctx, "DELETE FROM hpadminauth.sessions WHERE hash = $1", h[:])
	if err == nil && tag.RowsAffected() == 0 {
		err = fmt.Errorf("session: %w", adminauth.ErrNotFound)
	}
	return err
}

// DeleteAdminSessions implements adminauth.Store.
func (s *Store) DeleteAdminSessions(ctx context.Context, adminID string) (int, error) {
	tag, err := s.pool.Exec(ctx, "DELETE FROM hpadminauth.sessions WHERE admin_id = $1", adminID)
	return int(tag.RowsAffected()), err
}

// PruneSessions implements adminauth.Store.
func (s *Store) PruneSessions(ctx context.Context, now time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, "DELETE FROM hpadminauth.sessions WHERE expires <= $1", now)
	return int(tag.RowsAffected()), err
}

func scanThrottle(row pgx.Row) (adminauth.Throttle, error) {
	var t adminauth.Throttle
	var doc []byte
	if err := row.Scan(&doc); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return t, fmt.Errorf("throttle: %w", adminauth.ErrNotFound)
		}
		return t, err
	}
	if err := json.Unmarshal(doc, &t); err != nil {
		return t, fmt.Errorf("throttle record: %w", err)
	}
	return t, nil
}

// Throttle implements adminauth.Store.
func (s *Store) Throttle(ctx context.Context, key string) (adminauth.Throttle, error) {
	return scanThrottle(s.pool.QueryRow(ctx, "SELECT doc FROM hpadminauth.throttles WHERE key = $1", key))
}

// UpdateThrottle implements adminauth.Store.
func (s *Store) UpdateThrottle(ctx context.Context, key string, maxEntries int, fn func(*adminauth.Throttle) (bool, error)) error {
	if key == "" || len(key) > adminauth.MaxThrottleKey || maxEntries < 1 {
		return fmt.Errorf("throttle key of %d bytes, max %d entries: %w", len(key), maxEntries, adminauth.ErrInvalid)
	}
	return s.tx(ctx, func(tx pgx.Tx) error {
		const sel = "SELECT doc FROM hpadminauth.throttles WHERE key = $1 FOR UPDATE"
		t, err := scanThrottle(tx.QueryRow(ctx, sel, key))
		exists := err == nil
		if err != nil && !errors.Is(err, adminauth.ErrNotFound) {
			return err
		}
		if !exists {
			// New keys one at a time across replicas, then look again:
			// another may have inserted this key meanwhile.
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", throttleLock); err != nil {
				return err
			}
			t, err = scanThrottle(tx.QueryRow(ctx, sel, key))
			exists = err == nil
			if err != nil && !errors.Is(err, adminauth.ErrNotFound) {
				return err
			}
		}
		t.Key = key
		keep, err := fn(&t)
		if err != nil {
			return err
		}
		if !keep {
			if exists {
				_, err = tx.Exec(ctx, "DELETE FROM hpadminauth.throttles WHERE key = $1", key)
			}
			return err
		}
		doc, err := json.Marshal(t)
		if err != nil {
			return err
		}
		if exists {
			_, err = tx.Exec(ctx, "UPDATE hpadminauth.throttles SET locked_until = $2, doc = $3 WHERE key = $1", key, t.LockedUntil, doc)
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM hpadminauth.throttles").Scan(&n); err != nil {
			return err
		}
		if n >= maxEntries {
			if _, err := tx.Exec(ctx, `DELETE FROM hpadminauth.throttles WHERE key IN (
				SELECT key FROM hpadminauth.throttles ORDER BY locked_until, key LIMIT $1)`, n-maxEntries+1); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, "INSERT INTO hpadminauth.throttles (key, locked_until, doc) VALUES ($1, $2, $3)", key, t.LockedUntil, doc)
		return err
	})
}
