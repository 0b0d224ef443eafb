package boltapproval

import (
	"errors"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/hardphone/hardphone/fleet/console/approval"
	"github.com/hardphone/hardphone/fleet/console/approval/approvaltest"
)

func TestConformance(t *testing.T) {
	approvaltest.Run(t, approvaltest.Backend{
		Open: func(t *testing.T) approval.Store {
			s, err := Open(t.TempDir())
			if err != nil {
				t.Fatalf("Open error %v", err)
			}
			return s
		},
		Close: func(s approval.Store) error { return s.(*Store).Close() },
	})
}

func TestSchemaTooNew(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatalf("Open error %v", err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		return bucket(tx, bucketMeta).Put(keySchema, []byte{0, 0, 0, SchemaVersion + 1})
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(dir); !errors.Is(err, approval.ErrSchemaTooNew) {
		t.Fatalf("Open(newer layout) error %v, want ErrSchemaTooNew", err)
	}
}
