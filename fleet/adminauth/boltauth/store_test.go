package boltauth

import (
	"errors"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/hardphone/hardphone/fleet/adminauth"
	"github.com/hardphone/hardphone/fleet/adminauth/authtest"
)

func TestConformance(t *testing.T) {
	authtest.Run(t, authtest.Backend{
		Open: func(t *testing.T) adminauth.Store {
			s, err := Open(t.TempDir())
			if err != nil {
				t.Fatalf("Open error %v", err)
			}
			return s
		},
		Close: func(s adminauth.Store) error { return s.(*Store).Close() },
	})
}

func TestSchemaTooNew(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.db.Update(func(tx *bolt.Tx) error { return b(tx, bucketMeta).Put(keySchema, []byte{0, 0, 0, SchemaVersion + 1}) })
	s.Close()
	if _, err := Open(dir); !errors.Is(err, adminauth.ErrSchemaTooNew) {
		t.Fatalf("Open(newer layout) error %v, want ErrSchemaTooNew", err)
	}
}

func TestSharedFile(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "fleet.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := New(db)
	if err != nil {
		t.Fatalf("New error %v", err)
	}
	s.Close()
	if err := db.View(func(tx *bolt.Tx) error { return nil }); err != nil {
		t.Fatalf("db closed by Close of a shared-file store: %v", err)
	}
}
