package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// FileName is the state file's name inside the state directory.
const FileName = "state.db"

// SchemaVersion is the schema this binary writes and reads. A migration
// from an older version goes in Open, before the file is handed out.
const SchemaVersion = 1

// bucketStore is this package's own bucket; bucket names of other owners
// (credstore, update) are theirs to choose.
var (
	bucketStore = []byte("store")
	keySchema   = []byte("schema")
)

// Store is the open state file.
type Store struct {
	db   *bolt.DB
	path string
	log  *slog.Logger
}

type options struct {
	lockTimeout time.Duration
	log         *slog.Logger
}

// Option configures Open.
type Option func(*options) error

// WithLockTimeout sets how long Open waits for another process to release
// state.db before failing with ErrLocked; the default is one second.
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

// Open opens (creating if needed) dir/state.db. The directory is created
// 0700 and the file 0600; an existing file or directory that others may
// write is refused. An existing file is checked before bbolt maps it
// (ErrCorrupt when truncated or its meta pages are bad) and after (bbolt's
// page consistency check), and its schema must be SchemaVersion
// (ErrSchema). A refused file is never modified.
func Open(dir string, opts ...Option) (*Store, error) {
	o := options{lockTimeout: time.Second, log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("open state: %w", err)
		}
	}
	log := o.log.With("component", "store")
	if dir == "" {
		return nil, errors.New("open state: empty state directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open state: %w", err)
	}
	path := filepath.Join(dir, FileName)
	if err := checkPerms(dir, path); err != nil {
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	if err := checkFile(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	db, err := openBolt(path, o.lockTimeout)
	if err != nil {
		switch {
		case errors.Is(err, berrors.ErrTimeout):
			return nil, fmt.Errorf("open state %s: %w (waited %v)", path, ErrLocked, o.lockTimeout)
		case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
			return nil, fmt.Errorf("open state %s: %w: %v", path, ErrCorrupt, err)
		}
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	s := &Store{db: db, path: path, log: log}
	if err := s.check(); err != nil {
		// The check failed; closing a read-only view changes nothing.
		_ = db.Close()
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	if err := s.schema(); err != nil {
		// A refused schema was not written to; the close error adds nothing.
		_ = db.Close()
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	log.Info("state opened", "path", path, "schema", SchemaVersion)
	return s, nil
}

// openBolt opens the file with bbolt, turning a panic or fault while bbolt
// reads the freelist of a damaged file into ErrCorrupt.
func openBolt(path string, timeout time.Duration) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("%w: bbolt: %v", ErrCorrupt, r)
		}
	}()
	// InitialMmapSize stays at bbolt's default: a large initial map (bbolt's
	// own tests ask for 1 GiB) fails on 32-bit ARM's address space.
	return bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
}

// checkPerms refuses a directory or file that group or others may write:
// whoever can replace state.db can roll the agent's state back.
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
			return fmt.Errorf("%w: %s has mode %v, want no group or other write", errInsecure, p, st.Mode().Perm())
		}
	}
	return nil
}

// check runs bbolt's page consistency check in a read transaction. A page
// bbolt cannot make sense of panics inside bbolt, or faults if it points
// outside the map; both become ErrCorrupt instead of a crash.
func (s *Store) check() (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: page check: %v", ErrCorrupt, r)
		}
	}()
	return s.db.View(func(tx *bolt.Tx) error {
		// Drain the channel: bbolt's checker goroutine holds the
		// transaction open until it has sent everything.
		var errs []error
		n := 0
		for e := range tx.Check() {
			if n++; len(errs) < 5 {
				errs = append(errs, e)
			}
		}
		if n > 0 {
			return fmt.Errorf("%w: page check found %d problems: %v", ErrCorrupt, n, errors.Join(errs...))
		}
		return nil
	})
}

// schema writes the schema version into a new file and checks it in an
// existing one.
func (s *Store) schema() error {
	var (
		found bool
		ver   uint32
		other bool // buckets of other owners exist
	)
	if err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketStore); b != nil {
			if v := b.Get(keySchema); len(v) == 4 {
				found, ver = true, binary.BigEndian.Uint32(v)
			} else if v != nil {
				return fmt.Errorf("%w: schema value is %d bytes, want 4", ErrSchema, len(v))
			}
		}
		return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			if string(name) != string(bucketStore) {
				other = true
			}
			return nil
		})
	}); err != nil {
		return err
	}
	switch {
	case found && ver == SchemaVersion:
		return nil
	case found:
		return fmt.Errorf("%w: schema %d, this binary knows %d", ErrSchema, ver, SchemaVersion)
	case other:
		return fmt.Errorf("%w: buckets but no schema version: not a hardphone state file", ErrSchema)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketStore)
		if err != nil {
			return err
		}
		var v [4]byte
		binary.BigEndian.PutUint32(v[:], SchemaVersion)
		return b.Put(keySchema, v[:])
	})
}

// DB is the open bbolt database, for the packages that own a bucket in it.
// Close the Store, not the DB.
func (s *Store) DB() *bolt.DB { return s.db }

// Path is the state file's path.
func (s *Store) Path() string { return s.path }

// Close closes the state file.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close state %s: %w", s.path, err)
	}
	return nil
}
