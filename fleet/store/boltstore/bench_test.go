package boltstore

import (
	"crypto/rand"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/hardphone/hardphone/fleet/store/storetest"
)

// The references are bare bbolt doing the same writes and reads of the
// same sizes (a put and a read of the latest report; a put and a
// get-and-delete of a challenge), each in its own transaction, durable as
// ours: the floor our validation, encoding, indexes and history trim sit
// on.

func benchStore(b *testing.B) *Store {
	s, err := Open(filepath.Join(b.TempDir(), "data"))
	if err != nil {
		b.Fatalf("Open error %v", err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func benchDB(b *testing.B) *bolt.DB {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "ref.db"), 0o600, nil)
	if err != nil {
		b.Fatalf("bolt.Open error %v", err)
	}
	b.Cleanup(func() { db.Close() })
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err }); err != nil {
		b.Fatalf("create bucket: %v", err)
	}
	return db
}

func BenchmarkCheckIn(b *testing.B) {
	b.Run("ours", func(b *testing.B) { storetest.BenchCheckIn(b, benchStore(b)) })
	b.Run("ours-parallel", func(b *testing.B) { storetest.BenchCheckInParallel(b, benchStore(b)) })
	b.Run("reference", func(b *testing.B) {
		db := benchDB(b)
		body := storetest.SampleReport()
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			err := db.Update(func(tx *bolt.Tx) error {
				bk := tx.Bucket([]byte("b"))
				seq, err := bk.NextSequence()
				if err != nil {
					return err
				}
				return bk.Put(u64(seq), body)
			})
			if err != nil {
				b.Fatalf("put: %v", err)
			}
			err = db.View(func(tx *bolt.Tx) error {
				if _, v := tx.Bucket([]byte("b")).Cursor().Last(); len(v) != len(body) {
					b.Fatalf("read back %d bytes, want %d", len(v), len(body))
				}
				return nil
			})
			if err != nil {
				b.Fatalf("get: %v", err)
			}
		}
		storetest.ReportOps(b)
	})
}

func BenchmarkChallenge(b *testing.B) {
	b.Run("ours", func(b *testing.B) { storetest.BenchChallenge(b, benchStore(b)) })
	b.Run("ours-parallel", func(b *testing.B) { storetest.BenchChallengeParallel(b, benchStore(b)) })
	b.Run("reference", func(b *testing.B) {
		db := benchDB(b)
		body := make([]byte, 200) // a challenge record's size
		b.ReportAllocs()
		for b.Loop() {
			var id [16]byte
			// crypto/rand.Read never returns an error.
			_, _ = rand.Read(id[:])
			if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("b")).Put(id[:], body) }); err != nil {
				b.Fatalf("put: %v", err)
			}
			err := db.Update(func(tx *bolt.Tx) error {
				bk := tx.Bucket([]byte("b"))
				if bk.Get(id[:]) == nil {
					b.Fatalf("challenge gone")
				}
				return bk.Delete(id[:])
			})
			if err != nil {
				b.Fatalf("delete: %v", err)
			}
		}
		storetest.ReportOps(b)
	})
}
