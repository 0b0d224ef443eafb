package boltapproval

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hardphone/hardphone/fleet/console/approval"
)

// Layout, under approval.v1:
//
//	meta     "schema" -> u32 BE
//	changes  change ID -> JSON Change
//	order    u64 BE proposal time (ns) || change ID -> empty (newest last)
//	pending  change ID -> proposer admin ID (the pending ones only)
var (
	bucketRoot    = []byte("approval.v1")
	bucketMeta    = []byte("meta")
	bucketChanges = []byte("changes")
	bucketOrder   = []byte("order")
	bucketPending = []byte("pending")
	keySchema     = []byte("schema")
)

// SchemaVersion is the layout version this package writes.
const SchemaVersion = 1

// FileName is the file Open creates in its directory.
const FileName = "approval.db"

// Store is an approval.Store in a bbolt file.
type Store struct {
	db    *bolt.DB // never nil
	owned bool     // Open opened db; Close closes it
}

var _ approval.Store = (*Store)(nil)

// New keeps the changes in db, creating the buckets when missing; a newer
// layout is refused with approval.ErrSchemaTooNew. Close leaves db open.
func New(db *bolt.DB) (*Store, error) {
	if db == nil {
		return nil, errors.New("approval store: nil database")
	}
	err := db.Update(func(tx *bolt.Tx) error {
		root, err := tx.CreateBucketIfNotExists(bucketRoot)
		if err != nil {
			return err
		}
		for _, n := range [][]byte{bucketMeta, bucketChanges, bucketOrder, bucketPending} {
			if _, err := root.CreateBucketIfNotExists(n); err != nil {
				return err
			}
		}
		meta := root.Bucket(bucketMeta)
		if v := meta.Get(keySchema); v != nil {
			if len(v) != 4 || binary.BigEndian.Uint32(v) > SchemaVersion {
				return fmt.Errorf("approval layout %x, this binary knows %d: %w", v, SchemaVersion, approval.ErrSchemaTooNew)
			}
			return nil
		}
		return meta.Put(keySchema, binary.BigEndian.AppendUint32(nil, SchemaVersion))
	})
	if err != nil {
		return nil, fmt.Errorf("approval store: %w", err)
	}
	return &Store{db: db}, nil
}

// Open opens (creating, 0600 in a 0700 directory) dir/approval.db.
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("open approval store: empty directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open approval store: %w", err)
	}
	path := filepath.Join(dir, FileName)
	for _, p := range []string{dir, path} {
		st, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("open approval store: %w", err)
		}
		if st.Mode().Perm()&0o022 != 0 {
			return nil, fmt.Errorf("open approval store: %s has mode %v, want no group or other write", p, st.Mode().Perm())
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("open approval store %s: %w", path, err)
	}
	s, err := New(db)
	if err != nil {
		_ = db.Close() // New's error says what matters
		return nil, err
	}
	s.owned = true
	return s, nil
}

// Close closes the file if Open opened it.
func (s *Store) Close() error {
	if s.owned {
		return s.db.Close()
	}
	return nil
}

func bucket(tx *bolt.Tx, name []byte) *bolt.Bucket { return tx.Bucket(bucketRoot).Bucket(name) }

func orderKey(c *approval.Change) []byte {
	return append(binary.BigEndian.AppendUint64(nil, uint64(c.ProposedAt.UnixNano())), c.ID...)
}

func get(tx *bolt.Tx, id []byte) (approval.Change, error) {
	var c approval.Change
	v := bucket(tx, bucketChanges).Get(id)
	if v == nil {
		return c, fmt.Errorf("change %s: %w", id, approval.ErrNotFound)
	}
	if err := json.Unmarshal(v, &c); err != nil {
		return c, fmt.Errorf("change record %s: %w", id, err)
	}
	return c, nil
}

// put stores c and keeps the pending index in step.
func put(tx *bolt.Tx, c *approval.Change) error {
	v, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if err := bucket(tx, bucketChanges).Put([]byte(c.ID), v); err != nil {
		return err
	}
	if c.State == approval.StatePending {
		return bucket(tx, bucketPending).Put([]byte(c.ID), []byte(c.ProposedBy.AdminID))
	}
	return bucket(tx, bucketPending).Delete([]byte(c.ID))
}

// Create implements approval.Store.
func (s *Store) Create(ctx context.Context, c approval.Change) error {
	c.ProposedAt, c.Expires = c.ProposedAt.UTC().Round(0), c.Expires.UTC().Round(0)
	if err := c.Validate(); err != nil {
		return fmt.Errorf("create change: %w", err)
	}
	if c.State != approval.StatePending {
		return fmt.Errorf("create change %s in state %s: %w", c.ID, c.State, approval.ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if bucket(tx, bucketChanges).Get([]byte(c.ID)) != nil {
			return fmt.Errorf("change %s: %w", c.ID, approval.ErrExists)
		}
		// Expire what ran out, then count what is left.
		var ids [][]byte
		mine, all := 0, 0
		pc := bucket(tx, bucketPending).Cursor()
		for id, by := pc.First(); id != nil; id, by = pc.Next() {
			ids = append(ids, bytes.Clone(id))
			if string(by) == c.ProposedBy.AdminID {
				mine++
			}
			all++
		}
		for _, id := range ids {
			p, err := get(tx, id)
			if err != nil {
				return err
			}
			if approval.Expire(&p, c.ProposedAt) {
				if err := put(tx, &p); err != nil {
					return err
				}
				all--
				if p.ProposedBy.AdminID == c.ProposedBy.AdminID {
					mine--
				}
			}
		}
		if mine >= approval.MaxPendingPerAdmin || all >= approval.MaxPending {
			return fmt.Errorf("create change: %d pending of %s, %d in all (at most %d and %d): %w",
				mine, c.ProposedBy.Name, all, approval.MaxPendingPerAdmin, approval.MaxPending, approval.ErrLimit)
		}
		if err := put(tx, &c); err != nil {
			return err
		}
		if err := bucket(tx, bucketOrder).Put(orderKey(&c), nil); err != nil {
			return err
		}
		return prune(tx)
	})
}

// prune drops the oldest decided changes beyond approval.MaxHistory.
func prune(tx *bolt.Tx) error {
	order := bucket(tx, bucketOrder)
	total := order.Stats().KeyN
	decided := total - bucket(tx, bucketPending).Stats().KeyN
	if decided <= approval.MaxHistory {
		return nil
	}
	var drop [][]byte
	c := order.Cursor()
	for k, _ := c.First(); k != nil && decided-len(drop) > approval.MaxHistory; k, _ = c.Next() {
		id := k[8:]
		if bucket(tx, bucketPending).Get(id) != nil {
			continue
		}
		drop = append(drop, bytes.Clone(k))
	}
	for _, k := range drop {
		if err := order.Delete(k); err != nil {
			return err
		}
		if err := bucket(tx, bucketChanges).Delete(k[8:]); err != nil {
			return err
		}
	}
	return nil
}

// Get implements approval.Store.
func (s *Store) Get(ctx context.Context, id approval.ID) (approval.Change, error) {
	var c approval.Change
	if err := ctx.Err(); err != nil {
		return c, err
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		c, err = get(tx, []byte(id))
		return err
	})
	return c, err
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
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []approval.Change
	err := s.db.View(func(tx *bolt.Tx) error {
		c := bucket(tx, bucketOrder).Cursor()
		for k, _ := c.Last(); k != nil && len(out) < limit; k, _ = c.Prev() {
			ch, err := get(tx, k[8:])
			if err != nil {
				return err
			}
			if state == "" || ch.State == state {
				out = append(out, ch)
			}
		}
		return nil
	})
	return out, err
}

// Update implements approval.Store.
func (s *Store) Update(ctx context.Context, id approval.ID, fn func(*approval.Change) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		old, err := get(tx, []byte(id))
		if err != nil {
			return err
		}
		n := old
		if err := fn(&n); err != nil {
			return err
		}
		n.DecidedAt = n.DecidedAt.UTC().Round(0)
		if !approval.Immutable(&old, &n) {
			return fmt.Errorf("update change %s: identity changed: %w", id, approval.ErrInvalid)
		}
		if err := n.Validate(); err != nil {
			return fmt.Errorf("update change %s: %w", id, err)
		}
		return put(tx, &n)
	})
}
