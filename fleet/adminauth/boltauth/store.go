package boltauth

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
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hardphone/hardphone/fleet/adminauth"
)

// Layout, under adminauth.v1:
//
//	meta       "schema" -> u32 BE
//	admins     admin ID -> JSON Admin
//	names      name -> admin ID
//	sessions   token hash -> JSON session
//	throttles  key -> JSON Throttle
var (
	bucketRoot      = []byte("adminauth.v1")
	bucketMeta      = []byte("meta")
	bucketAdmins    = []byte("admins")
	bucketNames     = []byte("names")
	bucketSessions  = []byte("sessions")
	bucketThrottles = []byte("throttles")
	keySchema       = []byte("schema")
	// keyThrottles counts the throttles bucket's entries (bbolt's
	// Stats walks the whole tree).
	keyThrottles = []byte("throttles")
)

// SchemaVersion is the layout version this package writes.
const SchemaVersion = 1

// FileName is the file Open creates in its directory.
const FileName = "adminauth.db"

// Store is an adminauth.Store in a bbolt file.
type Store struct {
	db    *bolt.DB
	owned bool
	excl  sync.Mutex // Exclusive; other processes are kept out by bbolt's file lock
}

// Exclusive runs fn while no other Exclusive of this store runs (other
// processes cannot open the file while this one has it): for a
// check-then-act on the admins, such as hpfleet admin bootstrap's.
func (s *Store) Exclusive(ctx context.Context, fn func(context.Context) error) error {
	s.excl.Lock()
	defer s.excl.Unlock()
	return fn(ctx)
}

var (
	_ adminauth.Store     = (*Store)(nil)
	_ adminauth.Exclusive = (*Store)(nil)
)

// New keeps the records in db, creating the buckets when missing; a newer
// layout is refused with adminauth.ErrSchemaTooNew. Close leaves db open.
func New(db *bolt.DB) (*Store, error) {
	if db == nil {
		return nil, errors.New("adminauth store: nil database")
	}
	err := db.Update(func(tx *bolt.Tx) error {
		root, err := tx.CreateBucketIfNotExists(bucketRoot)
		if err != nil {
			return err
		}
		for _, n := range [][]byte{bucketMeta, bucketAdmins, bucketNames, bucketSessions, bucketThrottles} {
			if _, err := root.CreateBucketIfNotExists(n); err != nil {
				return err
			}
		}
		meta := root.Bucket(bucketMeta)
		if v := meta.Get(keySchema); v != nil {
			if len(v) != 4 || binary.BigEndian.Uint32(v) > SchemaVersion {
				return fmt.Errorf("adminauth layout %x, this binary knows %d: %w", v, SchemaVersion, adminauth.ErrSchemaTooNew)
			}
			return nil
		}
		return meta.Put(keySchema, binary.BigEndian.AppendUint32(nil, SchemaVersion))
	})
	if err != nil {
		return nil, fmt.Errorf("adminauth store: %w", err)
	}
	return &Store{db: db}, nil
}

// Open opens (creating, 0600 in a 0700 directory) dir/adminauth.db.
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("open adminauth store: empty directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open adminauth store: %w", err)
	}
	path := filepath.Join(dir, FileName)
	for _, p := range []string{dir, path} {
		st, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("open adminauth store: %w", err)
		}
		if st.Mode().Perm()&0o022 != 0 {
			return nil, fmt.Errorf("open adminauth store: %s has mode %v, want no group or other write", p, st.Mode().Perm())
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("open adminauth store %s: %w", path, err)
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

// Path is the file's path.
func (s *Store) Path() string { return s.db.Path() }

func b(tx *bolt.Tx, name []byte) *bolt.Bucket { return tx.Bucket(bucketRoot).Bucket(name) }

func (s *Store) view(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(fn)
}

func (s *Store) update(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Update(fn)
}

// CreateAdmin implements adminauth.Store.
func (s *Store) CreateAdmin(ctx context.Context, a adminauth.Admin) error {
	if err := a.Validate(); err != nil {
		return err
	}
	v, err := json.Marshal(a)
	if err != nil {
		return err
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		if b(tx, bucketAdmins).Get([]byte(a.ID)) != nil || b(tx, bucketNames).Get([]byte(a.Name)) != nil {
			return fmt.Errorf("admin %s: %w", a.Name, adminauth.ErrExists)
		}
		if err := b(tx, bucketAdmins).Put([]byte(a.ID), v); err != nil {
			return err
		}
		return b(tx, bucketNames).Put([]byte(a.Name), []byte(a.ID))
	})
}

func getAdmin(tx *bolt.Tx, id []byte) (adminauth.Admin, error) {
	var a adminauth.Admin
	v := b(tx, bucketAdmins).Get(id)
	if v == nil {
		return a, fmt.Errorf("admin: %w", adminauth.ErrNotFound)
	}
	if err := json.Unmarshal(v, &a); err != nil {
		return a, fmt.Errorf("admin record: %w", err)
	}
	return a, nil
}

// AdminByName implements adminauth.Store.
func (s *Store) AdminByName(ctx context.Context, name string) (adminauth.Admin, error) {
	var a adminauth.Admin
	err := s.view(ctx, func(tx *bolt.Tx) error {
		id := b(tx, bucketNames).Get([]byte(name))
		if id == nil {
			return fmt.Errorf("admin: %w", adminauth.ErrNotFound)
		}
		var err error
		a, err = getAdmin(tx, id)
		return err
	})
	return a, err
}

// AdminByID implements adminauth.Store.
func (s *Store) AdminByID(ctx context.Context, id string) (adminauth.Admin, error) {
	var a adminauth.Admin
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		a, err = getAdmin(tx, []byte(id))
		return err
	})
	return a, err
}

// ListAdmins returns up to limit (1..adminauth.MaxListAdmins) admins in
// name order: the admin console's list. It is not part of
// adminauth.Store: logins never list.
func (s *Store) ListAdmins(ctx context.Context, limit int) ([]adminauth.Admin, error) {
	if limit < 1 || limit > adminauth.MaxListAdmins {
		return nil, fmt.Errorf("list admins: limit %d, want 1..%d: %w", limit, adminauth.MaxListAdmins, adminauth.ErrInvalid)
	}
	var out []adminauth.Admin
	err := s.view(ctx, func(tx *bolt.Tx) error {
		c := b(tx, bucketNames).Cursor()
		for k, id := c.First(); k != nil && len(out) < limit; k, id = c.Next() {
			a, err := getAdmin(tx, id)
			if err != nil {
				return fmt.Errorf("admin %q: %w", k, err)
			}
			out = append(out, a)
		}
		return nil
	})
	return out, err
}

// UpdateAdmin implements adminauth.Store.
func (s *Store) UpdateAdmin(ctx context.Context, id string, fn func(*adminauth.Admin) error) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		a, err := getAdmin(tx, []byte(id))
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
		v, err := json.Marshal(n)
		if err != nil {
			return err
		}
		return b(tx, bucketAdmins).Put([]byte(id), v)
	})
}

// storedSession is a Session's record.
type storedSession struct {
	AdminID        string    `json:"a"`
	Kind           uint8     `json:"k"`
	Fingerprint    string    `json:"f"`
	CreatedAt      time.Time `json:"c"`
	LastSeen       time.Time `json:"l"`
	Expires        time.Time `json:"e"`
	SecondFactorAt time.Time `json:"s"`
	Ceremony       []byte    `json:"x,omitempty"`
	Failures       int       `json:"n,omitempty"`
}

func encodeSession(x adminauth.Session) ([]byte, error) {
	return json.Marshal(storedSession{x.AdminID, uint8(x.Kind), x.Fingerprint, x.CreatedAt, x.LastSeen, x.Expires,
		x.SecondFactorAt, x.Ceremony, x.Failures})
}

func decodeSession(h []byte, v []byte) (adminauth.Session, error) {
	var r storedSession
	if err := json.Unmarshal(v, &r); err != nil {
		return adminauth.Session{}, fmt.Errorf("session record: %w", err)
	}
	x := adminauth.Session{AdminID: r.AdminID, Kind: adminauth.SessionKind(r.Kind), Fingerprint: r.Fingerprint,
		CreatedAt: r.CreatedAt, LastSeen: r.LastSeen, Expires: r.Expires, SecondFactorAt: r.SecondFactorAt,
		Ceremony: r.Ceremony, Failures: r.Failures}
	copy(x.Hash[:], h)
	return x, nil
}

// CreateSession implements adminauth.Store.
func (s *Store) CreateSession(ctx context.Context, x adminauth.Session) error {
	if err := x.Validate(); err != nil {
		return err
	}
	v, err := encodeSession(x)
	if err != nil {
		return err
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		sb := b(tx, bucketSessions)
		if sb.Get(x.Hash[:]) != nil {
			return fmt.Errorf("session: %w", adminauth.ErrExists)
		}
		// The admin's sessions, oldest first: a scan of the bucket,
		// which holds at most MaxSessionsPerAdmin per admin (and the
		// expired ones PruneSessions has not removed yet).
		type mine struct {
			k       []byte
			created time.Time
		}
		var ms []mine
		c := sb.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			o, err := decodeSession(k, v)
			if err != nil {
				return err
			}
			if o.AdminID == x.AdminID {
				ms = append(ms, mine{bytes.Clone(k), o.CreatedAt})
			}
		}
		for len(ms) >= adminauth.MaxSessionsPerAdmin {
			oldest := 0
			for i := range ms {
				if ms[i].created.Before(ms[oldest].created) {
					oldest = i
				}
			}
			if err := sb.Delete(ms[oldest].k); err != nil {
				return err
			}
			ms = append(ms[:oldest], ms[oldest+1:]...)
		}
		return sb.Put(x.Hash[:], v)
	})
}

// SessionByHash implements adminauth.Store.
func (s *Store) SessionByHash(ctx context.Context, h adminauth.TokenHash) (adminauth.Session, error) {
	var x adminauth.Session
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v := b(tx, bucketSessions).Get(h[:])
		if v == nil {
			return fmt.Errorf("session: %w", adminauth.ErrNotFound)
		}
		var err error
		x, err = decodeSession(h[:], v)
		return err
	})
	return x, err
}

// UpdateSession implements adminauth.Store.
func (s *Store) UpdateSession(ctx context.Context, h adminauth.TokenHash, fn func(*adminauth.Session) error) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		sb := b(tx, bucketSessions)
		v := sb.Get(h[:])
		if v == nil {
			return fmt.Errorf("session: %w", adminauth.ErrNotFound)
		}
		x, err := decodeSession(h[:], v)
		if err != nil {
			return err
		}
		if err := fn(&x); err != nil {
			return err
		}
		if x.Hash != h {
			return fmt.Errorf("update session: hash changed: %w", adminauth.ErrInvalid)
		}
		if err := x.Validate(); err != nil {
			return err
		}
		nv, err := encodeSession(x)
		if err != nil {
			return err
		}
		return sb.Put(h[:], nv)
	})
}

// DeleteSession implements adminauth.Store.
func (s *Store) DeleteSession(ctx context.Context, h adminauth.TokenHash) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		sb := b(tx, bucketSessions)
		if sb.Get(h[:]) == nil {
			return fmt.Errorf("session: %w", adminauth.ErrNotFound)
		}
		return sb.Delete(h[:])
	})
}

func (s *Store) deleteSessions(ctx context.Context, match func(adminauth.Session) bool) (int, error) {
	n := 0
	err := s.update(ctx, func(tx *bolt.Tx) error {
		n = 0
		sb := b(tx, bucketSessions)
		var del [][]byte
		c := sb.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			x, err := decodeSession(k, v)
			if err != nil || match(x) {
				// An undecodable record is no session: it goes too.
				del = append(del, bytes.Clone(k))
			}
		}
		for _, k := range del {
			if err := sb.Delete(k); err != nil {
				return err
			}
		}
		n = len(del)
		return nil
	})
	return n, err
}

// DeleteAdminSessions implements adminauth.Store.
func (s *Store) DeleteAdminSessions(ctx context.Context, adminID string) (int, error) {
	return s.deleteSessions(ctx, func(x adminauth.Session) bool { return x.AdminID == adminID })
}

// PruneSessions implements adminauth.Store.
func (s *Store) PruneSessions(ctx context.Context, now time.Time) (int, error) {
	return s.deleteSessions(ctx, func(x adminauth.Session) bool { return !now.Before(x.Expires) })
}

// Throttle implements adminauth.Store.
func (s *Store) Throttle(ctx context.Context, key string) (adminauth.Throttle, error) {
	var t adminauth.Throttle
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v := b(tx, bucketThrottles).Get([]byte(key))
		if v == nil {
			return fmt.Errorf("throttle: %w", adminauth.ErrNotFound)
		}
		return json.Unmarshal(v, &t)
	})
	return t, err
}

// UpdateThrottle implements adminauth.Store.
func (s *Store) UpdateThrottle(ctx context.Context, key string, maxEntries int, fn func(*adminauth.Throttle) (bool, error)) error {
	if key == "" || len(key) > adminauth.MaxThrottleKey || maxEntries < 1 {
		return fmt.Errorf("throttle key of %d bytes, max %d entries: %w", len(key), maxEntries, adminauth.ErrInvalid)
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		tb := b(tx, bucketThrottles)
		t := adminauth.Throttle{Key: key}
		v := tb.Get([]byte(key))
		if v != nil {
			if err := json.Unmarshal(v, &t); err != nil {
				return fmt.Errorf("throttle record: %w", err)
			}
			t.Key = key
		}
		keep, err := fn(&t)
		if err != nil {
			return err
		}
		if !keep {
			if v == nil {
				return nil
			}
			if err := addCount(tx, -1); err != nil {
				return err
			}
			return tb.Delete([]byte(key))
		}
		if v == nil {
			if err := evict(tx, tb, maxEntries); err != nil {
				return err
			}
			if err := addCount(tx, 1); err != nil {
				return err
			}
		}
		nv, err := json.Marshal(t)
		if err != nil {
			return err
		}
		return tb.Put([]byte(key), nv)
	})
}

func count(tx *bolt.Tx) int {
	v := b(tx, bucketMeta).Get(keyThrottles)
	if len(v) != 8 {
		return 0
	}
	return int(binary.BigEndian.Uint64(v))
}

func addCount(tx *bolt.Tx, d int) error {
	return b(tx, bucketMeta).Put(keyThrottles, binary.BigEndian.AppendUint64(nil, uint64(max(count(tx)+d, 0))))
}

// evict makes room for one entry: while the table holds maxEntries or
// more, it deletes the entry whose lock ends first. The scan is of the
// whole table, only when it is full.
func evict(tx *bolt.Tx, tb *bolt.Bucket, maxEntries int) error {
	for count(tx) >= maxEntries {
		var victim []byte
		var until time.Time
		c := tb.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var t adminauth.Throttle
			if err := json.Unmarshal(v, &t); err != nil {
				victim = bytes.Clone(k) // an undecodable record goes first
				break
			}
			if victim == nil || t.LockedUntil.Before(until) {
				victim, until = bytes.Clone(k), t.LockedUntil
			}
		}
		if victim == nil {
			// The count is off (the table is empty): start it over.
			return addCount(tx, -count(tx))
		}
		if err := tb.Delete(victim); err != nil {
			return err
		}
		if err := addCount(tx, -1); err != nil {
			return err
		}
	}
	return nil
}
