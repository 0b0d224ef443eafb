package registrar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Tables: Kamailio's auth_db table, and the previous passwords during a
// rotation (created by Open with the same columns).
const (
	tableCurrent  = "subscriber"
	tablePrevious = "subscriber_prev"
)

// Subscribers writes Kamailio's subscriber table. Safe for concurrent use,
// also by several hpfleet replicas (each write is one transaction that
// locks the row).
type Subscribers struct {
	pool *pgxpool.Pool
	alg  string
	log  *slog.Logger
}

// SubscribersOption configures OpenSubscribers.
type SubscribersOption func(*Subscribers) error

// WithAlgorithm sets the digest algorithm the registrar verifies with
// (AlgSHA256, the default, or AlgMD5 for registrars and phones that
// cannot do better).
func WithAlgorithm(alg string) SubscribersOption {
	return func(s *Subscribers) error {
		if _, err := newHash(alg); err != nil {
			return err
		}
		s.alg = alg
		return nil
	}
}

// WithLogger sets the logger; the package adds component=registrar.
func WithLogger(l *slog.Logger) SubscribersOption {
	return func(s *Subscribers) error {
		if l == nil {
			return errors.New("nil logger")
		}
		s.log = l
		return nil
	}
}

// OpenSubscribers connects to the registrar's database (a PostgreSQL DSN
// or URL), checks that Kamailio's subscriber table is there and creates
// subscriber_prev (the same columns and keys) when it is not.
func OpenSubscribers(ctx context.Context, dsn string, opts ...SubscribersOption) (*Subscribers, error) {
	s := &Subscribers{alg: AlgSHA256, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, fmt.Errorf("registrar: %w", err)
		}
	}
	s.log = s.log.With("component", "registrar")
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The DSN holds a password: not in the message.
		return nil, errors.New("registrar: database DSN does not parse")
	}
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("registrar: connect: %w", err)
	}
	s.pool = pool
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_name = $1`, tableCurrent).Scan(&n); err != nil {
		pool.Close()
		return nil, fmt.Errorf("registrar: %w", err)
	}
	if n != 1 {
		pool.Close()
		return nil, fmt.Errorf("registrar: no %s table in the database (create Kamailio's auth_db schema first)", tableCurrent)
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+tablePrevious+` (LIKE `+tableCurrent+` INCLUDING ALL)`); err != nil {
		pool.Close()
		return nil, fmt.Errorf("registrar: create %s: %w", tablePrevious, err)
	}
	return s, nil
}

// Algorithm is the digest algorithm the hashes are computed with.
func (s *Subscribers) Algorithm() string { return s.alg }

// Close closes the connections.
func (s *Subscribers) Close() { s.pool.Close() }

// Set makes h the account's password hashes. With keepPrevious the hashes
// in place (if any, and other than h) move to subscriber_prev so both
// passwords verify; without, any previous entry is removed. Setting the
// same hashes again changes nothing, so a retried Set is harmless.
func (s *Subscribers) Set(ctx context.Context, user, domain string, h Hashes, keepPrevious bool) error {
	if err := checkAccount(user, domain); err != nil {
		return err
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var curHA1, curHA1b string
		err := tx.QueryRow(ctx, `SELECT ha1, ha1b FROM `+tableCurrent+` WHERE username = $1 AND domain = $2 FOR UPDATE`,
			user, domain).Scan(&curHA1, &curHA1b)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			if _, err := tx.Exec(ctx, `DELETE FROM `+tablePrevious+` WHERE username = $1 AND domain = $2`, user, domain); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO `+tableCurrent+` (username, domain, password, ha1, ha1b) VALUES ($1, $2, '', $3, $4)`,
				user, domain, h.HA1, h.HA1b)
			return err
		case err != nil:
			return err
		}
		if curHA1 == h.HA1 && curHA1b == h.HA1b {
			return nil
		}
		if keepPrevious {
			_, err = tx.Exec(ctx, `INSERT INTO `+tablePrevious+` (username, domain, password, ha1, ha1b) VALUES ($1, $2, '', $3, $4)
				ON CONFLICT (username, domain) DO UPDATE SET ha1 = excluded.ha1, ha1b = excluded.ha1b`, user, domain, curHA1, curHA1b)
		} else {
			_, err = tx.Exec(ctx, `DELETE FROM `+tablePrevious+` WHERE username = $1 AND domain = $2`, user, domain)
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE `+tableCurrent+` SET ha1 = $3, ha1b = $4, password = '' WHERE username = $1 AND domain = $2`,
			user, domain, h.HA1, h.HA1b)
		return err
	})
	if isUnique(err) {
		// Another replica inserted the row first: once more, now as an
		// update.
		return s.Set(ctx, user, domain, h, keepPrevious)
	}
	if err != nil {
		return fmt.Errorf("registrar: set %s@%s: %w", user, domain, err)
	}
	s.log.Info("subscriber password set", "user", user, "domain", domain, "previous_kept", keepPrevious)
	return nil
}

func isUnique(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// DropPrevious ends the previous password's validity: the phone confirmed
// the new one. Nothing to drop is not an error.
func (s *Subscribers) DropPrevious(ctx context.Context, user, domain string) error {
	if err := checkAccount(user, domain); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM `+tablePrevious+` WHERE username = $1 AND domain = $2`, user, domain)
	if err != nil {
		return fmt.Errorf("registrar: drop previous password of %s@%s: %w", user, domain, err)
	}
	if tag.RowsAffected() > 0 {
		s.log.Info("previous subscriber password dropped", "user", user, "domain", domain)
	}
	return nil
}

// Remove deletes the account from the registrar (both passwords).
func (s *Subscribers) Remove(ctx context.Context, user, domain string) error {
	if err := checkAccount(user, domain); err != nil {
		return err
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, tbl := range []string{tableCurrent, tablePrevious} {
			if _, err := tx.Exec(ctx, `DELETE FROM `+tbl+` WHERE username = $1 AND domain = $2`, user, domain); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("registrar: remove %s@%s: %w", user, domain, err)
	}
	s.log.Info("subscriber removed", "user", user, "domain", domain)
	return nil
}
