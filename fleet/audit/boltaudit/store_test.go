package boltaudit

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/hardphone/hardphone/fleet/audit"
	"github.com/hardphone/hardphone/fleet/audit/audittest"
)

func TestConformance(t *testing.T) {
	audittest.Run(t, audittest.Backend{
		Open: func(t *testing.T) audit.Storage {
			s, err := Open(t.TempDir())
			if err != nil {
				t.Fatalf("Open error %v", err)
			}
			return s
		},
		Reopen: func(t *testing.T, s audit.Storage) audit.Storage {
			dir := filepath.Dir(s.(*Storage).db.Path())
			if err := s.(*Storage).Close(); err != nil {
				t.Fatalf("Close error %v", err)
			}
			n, err := Open(dir)
			if err != nil {
				t.Fatalf("Open again error %v", err)
			}
			return n
		},
		Overwrite: func(t *testing.T, s audit.Storage, idx int64, data []byte) {
			err := s.(*Storage).db.Update(func(tx *bolt.Tx) error {
				rb := bucket(tx, bucketRecords)
				v := rb.Get(u64(uint64(idx)))
				sl := int(v[0])
				return rb.Put(u64(uint64(idx)), append(append([]byte{}, v[:1+sl]...), data...))
			})
			if err != nil {
				t.Fatalf("overwrite record %d: %v", idx, err)
			}
		},
		Truncate: func(t *testing.T, s audit.Storage, size int64) {
			err := s.(*Storage).db.Update(func(tx *bolt.Tx) error {
				for _, del := range []struct {
					b    []byte
					from int64
				}{{bucketRecords, size}, {bucketHashes, tlog.StoredHashCount(size)}} {
					c := bucket(tx, del.b).Cursor()
					for k, _ := c.Seek(u64(uint64(del.from))); k != nil; k, _ = c.Seek(u64(uint64(del.from))) {
						if err := c.Delete(); err != nil {
							return err
						}
					}
				}
				return bucket(tx, bucketMeta).Put(keySize, u64(uint64(size)))
			})
			if err != nil {
				t.Fatalf("truncate to %d: %v", size, err)
			}
		},
		Close: func(s audit.Storage) error { return s.(*Storage).Close() },
	})
}

// TestSharedFile: New on an open file (the fleet store's) adds its
// buckets beside others and leaves the file open on Close.
func TestSharedFile(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "fleet.db"), 0o600, nil)
	if err != nil {
		t.Fatalf("bolt.Open error %v", err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("devices")); return err }); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	s, err := New(db)
	if err != nil {
		t.Fatalf("New error %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close error %v", err)
	}
	if err := db.View(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte("devices")) == nil || tx.Bucket(bucketRoot) == nil {
			return errors.New("bucket missing")
		}
		return nil
	}); err != nil {
		t.Fatalf("after New and Close: %v", err)
	}
}

func TestSchemaTooNew(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatalf("Open error %v", err)
	}
	s.db.Update(func(tx *bolt.Tx) error {
		return bucket(tx, bucketMeta).Put(keySchema, []byte{0, 0, 0, SchemaVersion + 1})
	})
	s.Close()
	if _, err := Open(dir); !errors.Is(err, audit.ErrSchemaTooNew) {
		t.Fatalf("Open(newer layout) error %v, want ErrSchemaTooNew", err)
	}
}

func TestOpenRefusesWritableByOthers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err == nil {
		t.Fatalf("Open(dir mode 0777) succeeded")
	}
}
