package pgapproval

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hardphone/hardphone/fleet/console/approval"
)

// Advisory lock keys: migrations, and creating a change (the bounds).
const (
	migrationLock int64 = 0x6870617070720001
	createLock    int64 = 0x6870617070720002
)

const bootstrap = `
CREATE SCHEMA IF NOT EXISTS hpapproval;
CREATE TABLE IF NOT EXISTS hpapproval.schema_migrations (
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
	{1, "changes", `
CREATE TABLE hpapproval.changes (
	id          text COLLATE "C" PRIMARY KEY CHECK (id ~ '^chg-[0-9a-f]{32}$'),
	state       text COLLATE "C" NOT NULL CHECK (octet_length(state) BETWEEN 1 AND 16),
	proposer    text COLLATE "C" NOT NULL CHECK (proposer ~ '^[0-9a-f]{32}$'),
	proposed_at timestamptz NOT NULL,
	expires     timestamptz NOT NULL,
	doc         bytea NOT NULL CHECK (octet_length(doc) <= 8192)
);
CREATE INDEX changes_order ON hpapproval.changes (proposed_at DESC, id DESC);
CREATE INDEX changes_pending ON hpapproval.changes (proposer) WHERE state = 'pending';
`},
}

// SchemaVersion is the newest migration this package knows.
var SchemaVersion = migrations[len(migrations)-1].version

// Store is an approval.Store on PostgreSQL.
type Store struct {
	pool  *pgxpool.Pool
	owned bool
}

var _ approval.Store = (*Store)(nil)

// New keeps the changes in pool's database, migrating hpapproval. Close
// leaves pool open.
func New(ctx context.Context, pool *pgxpool.Pool) (*Store, error) {
	if pool == nil {
		return nil, errors.New("approval store: nil pool")
	}
	s := &Store{pool: pool}
	if err := s.migrate(ctx); err != nil {
		return nil, fmt.Errorf("approval store: %w", err)
	}
	return s, nil
}

var errDSN = errors.New("DSN does not parse (its text is withheld: it may hold a password)")

// Open connects to dsn with a pool of its own (0: pgxpool's default size).
func Open(ctx context.Context, dsn string, maxConns int) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("open approval store: %w", errDSN)
	}
	if maxConns < 0 || maxConns > 1000 {
		return nil, fmt.Errorf("open approval store: max connections %d: want 0..1000", maxConns)
	}
	if maxConns > 0 {
		cfg.MaxConns = int32(maxConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open approval store: %w", err)
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
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM hpapproval.schema_migrations").Scan(&have); err != nil {
		return err
	}
	if have > SchemaVersion {
		return fmt.Errorf("database at approval schema %d, this binary knows %d: %w", have, SchemaVersion, approval.ErrSchemaTooNew)
	}
	for _, m := range migrations {
		if m.version <= have {
			continue
		}
		err := pgx.BeginFunc(ctx, conn.Conn(), func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO hpapproval.schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name)
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
			return fmt.Errorf("%w (%s): %w", approval.ErrExists, pe.ConstraintName, err)
		case "23514", "23502":
			return fmt.Errorf("%w (%s): %w", approval.ErrInvalid, pe.ConstraintName, err)
		}
	}
	return err
}

func scan(row pgx.Row) (approval.Change, error) {
	var c approval.Change
	var doc []byte
	if err := row.Scan(&doc); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return c, fmt.Errorf("change: %w", approval.ErrNotFound)
		}
		return c, err
	}
	if err := json.Unmarshal(doc, &c); err != nil {
		return c, fmt.Errorf("change record: %w", err)
	}
	return c, nil
}

func write(ctx context.Context, tx pgx.Tx, c *approval.Change, insert bool) error {
	doc, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if insert {
		_, err = tx.Exec(ctx, `INSERT INTO hpapproval.changes (id, state, proposer, proposed_at, expires, doc)
			VALUES ($1, $2, $3, $4, $5, $6)`, c.ID, c.State, c.ProposedBy.AdminID, c.ProposedAt, c.Expires, doc)
		return err
	}
	_, err = tx.Exec(ctx, "UPDATE hpapproval.changes SET state = $2, doc = $3 WHERE id = $1", c.ID, c.State, doc)
	return err
}

// Create implements approval.Store.
func (s *Store) Create(ctx context.Context, c approval.Change) error {
	c.ProposedAt, c.Expires = c.ProposedAt.UTC().Truncate(time.Microsecond), c.Expires.UTC().Truncate(time.Microsecond)
	if err := c.Validate(); err != nil {
		return fmt.Errorf("create change: %w", err)
	}
	if c.State != approval.StatePending {
		return fmt.Errorf("create change %s in state %s: %w", c.ID, c.State, approval.ErrInvalid)
	}
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", createLock); err != nil {
			return err
		}
		// Expire what ran out, then count what is left.
		rows, err := tx.Query(ctx, "SELECT doc FROM hpapproval.changes WHERE state = 'pending' AND expires <= $1 FOR UPDATE", c.ProposedAt)
		if err != nil {
			return err
		}
		var expired []approval.Change
		for rows.Next() {
			p, err := scan(rows)
			if err != nil {
				rows.Close()
				return err
			}
			expired = append(expired, p)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for i := range expired {
			if approval.Expire(&expired[i], c.ProposedAt) {
				if err := write(ctx, tx, &expired[i], false); err != nil {
					return err
				}
			}
		}
		var mine, all int
		err = tx.QueryRow(ctx, `SELECT count(*) FILTER (WHERE proposer = $1), count(*) FROM hpapproval.changes
			WHERE state = 'pending'`, c.ProposedBy.AdminID).Scan(&mine, &all)
		if err != nil {
			return err
		}
		if mine >= approval.MaxPendingPerAdmin || all >= approval.MaxPending {
			return fmt.Errorf("%d pending of %s, %d in all (at most %d and %d): %w",
				mine, c.ProposedBy.Name, all, approval.MaxPendingPerAdmin, approval.MaxPending, approval.ErrLimit)
		}
		if err := write(ctx, tx, &c, true); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM hpapproval.changes WHERE id IN (
			SELECT id FROM hpapproval.changes WHERE state <> 'pending'
			ORDER BY proposed_at DESC, id DESC OFFSET $1)`, approval.MaxHistory)
		return err
	})
	if err != nil {
		return fmt.Errorf("create change %s: %w", c.ID, err)
	}
	return nil
}

// Get implements approval.Store.
func (s *Store) Get(ctx context.Context, id approval.ID) (approval.Change, error) {
	return scan(s.pool.QueryRow(ctx, "SELECT doc FROM hpapproval.changes WHERE id = $1", id))
}

func validState(st approval.State) bool {
	for _, s := range []approval.State{"", approval.StatePending, approval.StateApproved, approval.StateApplied,
		approval.StateFailed, approval.StateRefused, approval.StateExpired} {
		if st == s {
			return true
		}
	}
	return false
}

// List implements approval.Store.
func (s *Store) List(ctx context.Context, state approval.State, limit int) ([]approval.Change, error) {
	if limit < 1 || limit > approval.MaxList || !validState(state) {
		return nil, fmt.Errorf("list changes: state %.32q, limit %d (want 1..%d): %w", state, limit, approval.MaxList, approval.ErrInvalid)
	}
	rows, err := s.pool.Query(ctx, `SELECT doc FROM hpapproval.changes WHERE $1 = '' OR state = $1
		ORDER BY proposed_at DESC, id DESC LIMIT $2`, string(state), limit)
	if err != nil {
		return nil, fmt.Errorf("list changes: %w", err)
	}
	defer rows.Close()
	var out []approval.Change
	for rows.Next() {
		c, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("list changes: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list changes: %w", err)
	}
	return out, nil
}

// Update implements approval.Store.
func (s *Store) Update(ctx context.Context, id approval.ID, fn func(*approval.Change) error) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		old, err := scan(tx.QueryRow(ctx, "SELECT doc FROM hpapproval.changes WHERE id = $1 FOR UPDATE", id))
		if err != nil {
			return err
		}
		n := old
		if err := fn(&n); err != nil {
			return err
		}
		n.DecidedAt = n.DecidedAt.UTC().Truncate(time.Microsecond)
		if !approval.Immutable(&old, &n) {
			return fmt.Errorf("update change %s: identity changed: %w", id, approval.ErrInvalid)
		}
		if err := n.Validate(); err != nil {
			return fmt.Errorf("update change %s: %w", id, err)
		}
		return write(ctx, tx, &n, false)
	})
}
