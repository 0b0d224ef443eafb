package boltstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/hardphone/hardphone/fleet/store"
)

// FileName is the database file's name inside the data directory.
const FileName = "fleet.db"

// ErrLocked is returned by Open when another process holds the file.
var ErrLocked = errors.New("fleet database in use by another process")

// Store is a store.Store on a bbolt file.
type Store struct {
	db     *bolt.DB // never nil
	path   string
	log    *slog.Logger
	leases leases // the roles this process leads (events.go)
}

var _ store.Store = (*Store)(nil)

type options struct {
	lockTimeout time.Duration
	log         *slog.Logger
}

// Option configures Open.
type Option func(*options) error

// WithLockTimeout sets how long Open waits for another process to release
// the file before failing with ErrLocked; the default is one second.
func WithLockTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("lock timeout %v: want > 0", d)
		}
		o.lockTimeout = d
		return nil
	}
}

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

// Open opens dir/fleet.db, creating the directory (0700) and the file
// (0600) when missing, and migrates its schema to SchemaVersion. A file
// with a newer schema is refused with store.ErrSchemaTooNew and not
// written.
func Open(dir string, opts ...Option) (*Store, error) {
	o := options{lockTimeout: time.Second, log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("open fleet store: %w", err)
		}
	}
	if dir == "" {
		return nil, errors.New("open fleet store: empty data directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open fleet store: %w", err)
	}
	path := filepath.Join(dir, FileName)
	if err := checkPerms(dir, path); err != nil {
		return nil, fmt.Errorf("open fleet store %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: o.lockTimeout})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("open fleet store %s: %w (waited %v)", path, ErrLocked, o.lockTimeout)
		}
		return nil, fmt.Errorf("open fleet store %s: %w", path, err)
	}
	s := &Store{db: db, path: path, log: o.log.With("component", "fleetstore", "backend", "bbolt")}
	from, err := s.migrate()
	if err != nil {
		// The migration's transaction rolled back; the close error adds
		// nothing to the one returned.
		_ = db.Close()
		return nil, fmt.Errorf("open fleet store %s: %w", path, err)
	}
	s.log.Info("fleet store opened", "path", path, "schema", SchemaVersion, "migrated_from", from)
	return s, nil
}

// checkPerms refuses a directory or file that group or others may write.
func checkPerms(dir, path string) error {
	for _, p := range []string{dir, path} {
		st, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o022 != 0 {
			return fmt.Errorf("%s has mode %v, want no group or other write", p, st.Mode().Perm())
		}
	}
	return nil
}

// Path is the database file's path.
func (s *Store) Path() string { return s.path }

// Close closes the file.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close fleet store %s: %w", s.path, err)
	}
	return nil
}

// view runs fn in a read transaction.
func (s *Store) view(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(fn)
}

// update runs fn in a write transaction: all of it commits or none.
func (s *Store) update(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Update(fn)
}
