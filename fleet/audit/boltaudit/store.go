package boltaudit

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/hardphone/hardphone/fleet/audit"
)

// Layout, under the top-level bucket audit.v1:
//
//	meta         "size" -> u64 BE; "schema" -> u32 BE
//	records      u64 BE index -> u8 seal length || seal || data
//	hashes       u64 BE stored-hash index -> 32 bytes
//	checkpoints  u64 BE size -> note
var (
	bucketRoot        = []byte("audit.v1")
	bucketMeta        = []byte("meta")
	bucketRecords     = []byte("records")
	bucketHashes      = []byte("hashes")
	bucketCheckpoints = []byte("checkpoints")
	keySize           = []byte("size")
	keySchema         = []byte("schema")
)

// SchemaVersion is the layout version this package writes.
const SchemaVersion = 1

// FileName is the file Open creates in its directory.
const FileName = "audit.db"

// Storage is an audit.Storage in a bbolt file.
type Storage struct {
	db    *bolt.DB // never nil
	owned bool     // Open opened db; Close closes it
}

var _ audit.Storage = (*Storage)(nil)

// New keeps the log in db (the fleet store's file), creating its buckets
// when missing. A file whose audit layout is newer is refused with
// audit.ErrSchemaTooNew. Close does not close db.
func New(db *bolt.DB) (*Storage, error) {
	if db == nil {
		return nil, errors.New("audit storage: nil database")
	}
	err := db.Update(func(tx *bolt.Tx) error {
		root, err := tx.CreateBucketIfNotExists(bucketRoot)
		if err != nil {
			return err
		}
		for _, name := range [][]byte{bucketMeta, bucketRecords, bucketHashes, bucketCheckpoints} {
			if _, err := root.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		meta := root.Bucket(bucketMeta)
		if v := meta.Get(keySchema); v != nil {
			if len(v) != 4 {
				return fmt.Errorf("schema version of %d bytes: %w", len(v), audit.ErrTampered)
			}
			if got := binary.BigEndian.Uint32(v); got > SchemaVersion {
				return fmt.Errorf("audit layout %d, this binary knows %d: %w", got, SchemaVersion, audit.ErrSchemaTooNew)
			}
			return nil
		}
		if err := meta.Put(keySchema, binary.BigEndian.AppendUint32(nil, SchemaVersion)); err != nil {
			return err
		}
		return meta.Put(keySize, u64(0))
	})
	if err != nil {
		return nil, fmt.Errorf("audit storage: %w", err)
	}
	return &Storage{db: db}, nil
}

// Open opens (creating, 0600 in a 0700 directory) dir/audit.db as a file
// of its own.
func Open(dir string) (*Storage, error) {
	if dir == "" {
		return nil, errors.New("open audit storage: empty directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open audit storage: %w", err)
	}
	path := filepath.Join(dir, FileName)
	for _, p := range []string{dir, path} {
		st, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("open audit storage: %w", err)
		}
		if st.Mode().Perm()&0o022 != 0 {
			return nil, fmt.Errorf("open audit storage: %s has mode %v, want no group or other write", p, st.Mode().Perm())
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("open audit storage %s: %w", path, err)
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
func (s *Storage) Close() error {
	if !s.owned {
		return nil
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close audit storage: %w", err)
	}
	return nil
}

func u64(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func bucket(tx *bolt.Tx, name []byte) *bolt.Bucket { return tx.Bucket(bucketRoot).Bucket(name) }

func readSize(tx *bolt.Tx) (int64, error) {
	v := bucket(tx, bucketMeta).Get(keySize)
	if len(v) != 8 {
		return 0, fmt.Errorf("size of %d bytes: %w", len(v), audit.ErrTampered)
	}
	n := binary.BigEndian.Uint64(v)
	if n > 1<<62 {
		return 0, fmt.Errorf("size %d: %w", n, audit.ErrTampered)
	}
	return int64(n), nil
}

// Append implements audit.Storage.
func (s *Storage) Append(ctx context.Context, build audit.BuildFunc) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var first int64
	err := s.db.Update(func(tx *bolt.Tx) error {
		size, err := readSize(tx)
		if err != nil {
			return err
		}
		hb := bucket(tx, bucketHashes)
		recs, hashes, err := build(size, tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
			return readHashes(hb, idx)
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
		rb := bucket(tx, bucketRecords)
		for i, r := range recs {
			if len(r.Seal) > 255 || len(r.Data) > audit.MaxEntrySize {
				return fmt.Errorf("record of %d bytes, seal of %d: %w", len(r.Data), len(r.Seal), audit.ErrInvalid)
			}
			k := u64(uint64(size + int64(i)))
			// Append-only: an existing key means the size lies.
			if rb.Get(k) != nil {
				return fmt.Errorf("record %d already stored: %w", size+int64(i), audit.ErrTampered)
			}
			v := append(append([]byte{byte(len(r.Seal))}, r.Seal...), r.Data...)
			if err := rb.Put(k, v); err != nil {
				return err
			}
		}
		for i, h := range hashes {
			k := u64(uint64(base + int64(i)))
			if hb.Get(k) != nil {
				return fmt.Errorf("stored hash %d already stored: %w", base+int64(i), audit.ErrTampered)
			}
			if err := hb.Put(k, bytes.Clone(h[:])); err != nil {
				return err
			}
		}
		first = size
		return bucket(tx, bucketMeta).Put(keySize, u64(uint64(size+n)))
	})
	if err != nil {
		return 0, fmt.Errorf("append: %w", err)
	}
	return first, nil
}

func readHashes(hb *bolt.Bucket, idx []int64) ([]tlog.Hash, error) {
	if len(idx) > audit.MaxReadHashes {
		return nil, fmt.Errorf("read %d hashes, at most %d: %w", len(idx), audit.MaxReadHashes, audit.ErrInvalid)
	}
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		if x < 0 {
			return nil, fmt.Errorf("stored hash %d: %w", x, audit.ErrInvalid)
		}
		v := hb.Get(u64(uint64(x)))
		if v == nil {
			return nil, fmt.Errorf("stored hash %d: %w", x, audit.ErrNotFound)
		}
		if len(v) != tlog.HashSize {
			return nil, fmt.Errorf("stored hash %d of %d bytes: %w", x, len(v), audit.ErrTampered)
		}
		copy(out[i][:], v)
	}
	return out, nil
}

// Size implements audit.Storage.
func (s *Storage) Size(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var n int64
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		n, err = readSize(tx)
		return err
	})
	return n, err
}

// ReadHashes implements audit.Storage.
func (s *Storage) ReadHashes(ctx context.Context, idx []int64) ([]tlog.Hash, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []tlog.Hash
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		out, err = readHashes(bucket(tx, bucketHashes), idx)
		return err
	})
	return out, err
}

// ReadRecords implements audit.Storage.
func (s *Storage) ReadRecords(ctx context.Context, from int64, n int) ([]audit.Record, error) {
	if from < 0 || n < 1 || n > audit.MaxReadRecords {
		return nil, fmt.Errorf("read %d records from %d: %w", n, from, audit.ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []audit.Record
	err := s.db.View(func(tx *bolt.Tx) error {
		size, err := readSize(tx)
		if err != nil {
			return err
		}
		rb := bucket(tx, bucketRecords)
		for i := from; i < size && len(out) < n; i++ {
			v := rb.Get(u64(uint64(i)))
			if v == nil {
				return fmt.Errorf("record %d below size %d missing: %w", i, size, audit.ErrTampered)
			}
			if len(v) < 1 || len(v) < 1+int(v[0]) {
				return fmt.Errorf("record %d of %d bytes: %w", i, len(v), audit.ErrTampered)
			}
			sl := int(v[0])
			out = append(out, audit.Record{Seal: bytes.Clone(v[1 : 1+sl]), Data: bytes.Clone(v[1+sl:])})
		}
		return nil
	})
	return out, err
}

// AddCheckpoint implements audit.Storage.
func (s *Storage) AddCheckpoint(ctx context.Context, size int64, note []byte) error {
	if size < 1 || len(note) == 0 || len(note) > 64<<10 {
		return fmt.Errorf("add checkpoint of %d (%d bytes): %w", size, len(note), audit.ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		cb := bucket(tx, bucketCheckpoints)
		k := u64(uint64(size))
		if cb.Get(k) != nil {
			return nil // the first note for a size stays
		}
		return cb.Put(k, bytes.Clone(note))
	})
}

// Checkpoints implements audit.Storage.
func (s *Storage) Checkpoints(ctx context.Context, from int64, n int) ([]audit.StoredCheckpoint, error) {
	if n < 1 || n > audit.MaxReadRecords {
		return nil, fmt.Errorf("read %d checkpoints: %w", n, audit.ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []audit.StoredCheckpoint
	err := s.db.View(func(tx *bolt.Tx) error {
		c := bucket(tx, bucketCheckpoints).Cursor()
		for k, v := c.Seek(u64(uint64(max(from, 0)))); k != nil && len(out) < n; k, v = c.Next() {
			if len(k) != 8 {
				return fmt.Errorf("checkpoint key of %d bytes: %w", len(k), audit.ErrTampered)
			}
			out = append(out, audit.StoredCheckpoint{Size: int64(binary.BigEndian.Uint64(k)), Note: bytes.Clone(v)})
		}
		return nil
	})
	return out, err
}

// LatestCheckpoint implements audit.Storage.
func (s *Storage) LatestCheckpoint(ctx context.Context) (audit.StoredCheckpoint, error) {
	if err := ctx.Err(); err != nil {
		return audit.StoredCheckpoint{}, err
	}
	var out audit.StoredCheckpoint
	err := s.db.View(func(tx *bolt.Tx) error {
		k, v := bucket(tx, bucketCheckpoints).Cursor().Last()
		if k == nil {
			return fmt.Errorf("no checkpoint stored: %w", audit.ErrNotFound)
		}
		if len(k) != 8 {
			return fmt.Errorf("checkpoint key of %d bytes: %w", len(k), audit.ErrTampered)
		}
		out = audit.StoredCheckpoint{Size: int64(binary.BigEndian.Uint64(k)), Note: bytes.Clone(v)}
		return nil
	})
	return out, err
}
