package pgstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hardphone/hardphone/fleet/store"
)

// Store is a store.Store on a PostgreSQL database.
type Store struct {
	pool *pgxpool.Pool // never nil
	log  *slog.Logger
}

var _ store.Store = (*Store)(nil)

type options struct {
	log      *slog.Logger
	maxConns int32
}

// Option configures Open.
type Option func(*options) error

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("nil logger")
		}
		o.log = l
		return nil
	}
}

// WithMaxConns bounds the connections this replica opens (1..1000); the
// default is pgxpool's, the larger of 4 and the number of CPUs. All
// replicas together must stay below the server's max_connections.
func WithMaxConns(n int) Option {
	return func(o *options) error {
		if n < 1 || n > 1000 {
			return fmt.Errorf("max connections %d: want 1..1000", n)
		}
		o.maxConns = int32(n)
		return nil
	}
}

// errDSN stands for every DSN parse error: pgx's message quotes the DSN,
// redacting passwords only on a best-effort basis.
var errDSN = errors.New("DSN does not parse (its text is withheld: it may hold a password)")

// Open connects to the database at dsn (a libpq keyword/value string or a
// postgres:// URL), migrates its schema to SchemaVersion under an advisory
// lock, and returns the store. The role needs CREATE on the database the
// first time (it creates the schema hpfleet). A database with a newer
// schema is refused with store.ErrSchemaTooNew.
func Open(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	o := options{log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("open fleet store: %w", err)
		}
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("open fleet store: %w", errDSN)
	}
	if o.maxConns > 0 {
		cfg.MaxConns = o.maxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open fleet store: %w", err)
	}
	s := &Store{pool: pool, log: o.log.With("component", "fleetstore", "backend", "postgres")}
	from, err := s.migrate(ctx)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("open fleet store on %s/%s: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Database, err)
	}
	s.log.Info("fleet store opened", "host", cfg.ConnConfig.Host, "database", cfg.ConnConfig.Database,
		"schema", SchemaVersion, "migrated_from", from)
	return s, nil
}

// Close closes the connections. Calls after Close fail.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// maxTxAttempts bounds the retries of a transaction PostgreSQL aborted to
// break a deadlock.
const maxTxAttempts = 4

// tx runs fn in a transaction, committed when fn returns nil, retried when
// PostgreSQL aborts it for a deadlock or a serialization failure (fn must
// then be safe to run again: it only touches the database and its own
// results).
func (s *Store) tx(ctx context.Context, fn func(pgx.Tx) error) error {
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := pgx.BeginFunc(ctx, s.pool, fn)
		if err == nil || !retryable(err) || attempt == maxTxAttempts {
			return err
		}
		s.log.Warn("transaction retried", "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt) * 5 * time.Millisecond):
		}
	}
}

// PostgreSQL error codes (Appendix A of its manual).
const (
	codeUniqueViolation      = "23505"
	codeForeignKeyViolation  = "23503"
	codeCheckViolation       = "23514"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
)

func pgCode(err error) (code, constraint string) {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code, pe.ConstraintName
	}
	return "", ""
}

func retryable(err error) bool {
	code, _ := pgCode(err)
	return code == codeSerializationFailure || code == codeDeadlockDetected
}

// classify adds the store sentinel a constraint violation means, keeping
// PostgreSQL's error in the chain.
func classify(err error) error {
	switch code, constraint := pgCode(err); code {
	case codeUniqueViolation:
		return fmt.Errorf("%w (%s): %w", store.ErrExists, constraint, err)
	case codeCheckViolation:
		return fmt.Errorf("%w (%s): %w", store.ErrInvalid, constraint, err)
	case codeForeignKeyViolation:
		return fmt.Errorf("%w (%s): %w", store.ErrNotFound, constraint, err)
	}
	return err
}

// ctxErr returns the context's error before a call starts, so a canceled
// call fails with context.Canceled whatever pgx would make of it.
func ctxErr(ctx context.Context) error { return ctx.Err() }
