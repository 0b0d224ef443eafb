package boltstore

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hardphone/hardphone/fleet/store"
	"github.com/hardphone/hardphone/fleet/store/storetest"
)

func open(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatalf("Open(%s) error %v", dir, err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Backend{
		Open: func(t *testing.T) store.Store { return open(t, filepath.Join(t.TempDir(), "data")) },
		Reopen: func(t *testing.T, s store.Store) store.Store {
			dir := filepath.Dir(s.(*Store).Path())
			if err := s.Close(); err != nil {
				t.Fatalf("Close() error %v", err)
			}
			return open(t, dir)
		},
		OpenTooNew: func(t *testing.T, s store.Store) error {
			path := s.(*Store).Path()
			if err := s.Close(); err != nil {
				t.Fatalf("Close() error %v", err)
			}
			setSchema(t, path, SchemaVersion+1)
			s2, err := Open(filepath.Dir(path))
			if err == nil {
				s2.Close()
			}
			return err
		},
		StoredReports: func(t *testing.T, s store.Store, id store.DeviceID) int {
			n := 0
			err := s.(*Store).db.View(func(tx *bolt.Tx) error {
				if b := tx.Bucket(bReports).Bucket([]byte(id)); b != nil {
					n = b.Stats().KeyN
				}
				return nil
			})
			if err != nil {
				t.Fatalf("count reports: %v", err)
			}
			return n
		},
	})
}

// setSchema writes a schema version into the file behind the store's back.
func setSchema(t *testing.T, path string, v uint32) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("bolt.Open(%s) error %v", path, err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], v)
		return tx.Bucket(bMeta).Put(keySchema, b[:])
	})
	if err != nil {
		t.Fatalf("set schema %d: %v", v, err)
	}
}

// TestOpenFiles checks the modes Open creates and refuses.
func TestOpenFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := open(t, dir)
	for _, tt := range []struct {
		path string
		want os.FileMode
	}{{dir, 0o700}, {s.Path(), 0o600}} {
		st, err := os.Stat(tt.path)
		if err != nil {
			t.Fatalf("Stat(%s) error %v", tt.path, err)
		}
		if got := st.Mode().Perm(); got != tt.want {
			t.Fatalf("mode of %s = %v, want %v", tt.path, got, tt.want)
		}
	}
	// A second process (here: a second Open) is refused while the first
	// holds the file.
	if _, err := Open(dir, WithLockTimeout(50*time.Millisecond)); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open error = %v, want ErrLocked", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close() error %v", err)
	}
	if err := os.Chmod(s.Path(), 0o666); err != nil {
		t.Fatalf("Chmod error %v", err)
	}
	if _, err := Open(dir); err == nil {
		t.Fatalf("Open(world-writable file) = nil error, want refusal")
	}
}

// TestOpenForeignFile refuses a bbolt file that is not a fleet store.
func TestOpenForeignFile(t *testing.T) {
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	if err != nil {
		t.Fatalf("bolt.Open error %v", err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("other")); return err }); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	db.Close()
	if _, err := Open(dir); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Open(foreign bbolt file) error = %v, want ErrInvalid", err)
	}
}

// TestMigrationsNumbered keeps the migration list 1, 2, 3, ...
func TestMigrationsNumbered(t *testing.T) {
	for i, m := range migrations {
		if m.version != uint32(i+1) {
			t.Fatalf("migrations[%d].version = %d, want %d", i, m.version, i+1)
		}
	}
}
