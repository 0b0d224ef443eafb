package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestOpenCreatesSchema(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s, err := Open(dir)
	if err != nil {
		t.Fatalf("Open = %v", err)
	}
	if s.Path() != filepath.Join(dir, FileName) {
		t.Fatalf("Path() = %s", s.Path())
	}
	var ver uint32
	s.DB().View(func(tx *bolt.Tx) error {
		ver = binary.BigEndian.Uint32(tx.Bucket(bucketStore).Get(keySchema))
		return nil
	})
	if ver != SchemaVersion {
		t.Fatalf("schema = %d, want %d", ver, SchemaVersion)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	for _, p := range []struct {
		path string
		mode os.FileMode
	}{{dir, 0o700}, {s.Path(), 0o600}} {
		st, err := os.Stat(p.path)
		if err != nil || st.Mode().Perm() != p.mode {
			t.Fatalf("mode of %s = %v, %v, want %v", p.path, st.Mode().Perm(), err, p.mode)
		}
	}
	s2, err := Open(dir)
	if err != nil {
		t.Fatalf("reopen = %v", err)
	}
	s2.Close()
}

func TestOpenRefuses(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, dir string)
		want    error
	}{
		{"newer schema", func(t *testing.T, dir string) {
			writeBolt(t, dir, func(tx *bolt.Tx) error {
				b, _ := tx.CreateBucketIfNotExists(bucketStore)
				return b.Put(keySchema, []byte{0, 0, 0, 9})
			})
		}, ErrSchema},
		{"foreign buckets", func(t *testing.T, dir string) {
			writeBolt(t, dir, func(tx *bolt.Tx) error {
				_, err := tx.CreateBucketIfNotExists([]byte("someone-else"))
				return err
			})
		}, ErrSchema},
		{"not bbolt", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, FileName), bytes.Repeat([]byte("x"), 16384), 0o600); err != nil {
				t.Fatalf("write: %v", err)
			}
		}, ErrCorrupt},
		{"meta pages zeroed", func(t *testing.T, dir string) {
			writeBolt(t, dir, func(tx *bolt.Tx) error { return nil })
			path := filepath.Join(dir, FileName)
			b, _ := os.ReadFile(path)
			clear(b[:8192])
			os.WriteFile(path, b, 0o600)
		}, ErrCorrupt},
		{"group-writable file", func(t *testing.T, dir string) {
			writeBolt(t, dir, func(tx *bolt.Tx) error { return nil })
			os.Chmod(filepath.Join(dir, FileName), 0o620)
		}, errInsecure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.prepare(t, dir)
			before, _ := os.ReadFile(filepath.Join(dir, FileName))
			s, err := Open(dir)
			if err == nil {
				s.Close()
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open = %v, want %v", err, tt.want)
			}
			after, _ := os.ReadFile(filepath.Join(dir, FileName))
			if !bytes.Equal(before, after) {
				t.Fatalf("refused Open changed the file")
			}
		})
	}
}

func writeBolt(t *testing.T, dir string, fn func(*bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	if err != nil {
		t.Fatalf("bolt.Open = %v", err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatalf("update: %v", err)
	}
}

func TestLocked(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatalf("Open = %v", err)
	}
	defer s.Close()
	if _, err := Open(dir, WithLockTimeout(50*time.Millisecond)); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
}
