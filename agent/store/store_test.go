package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hardphone/hardphone/crypto/credstore"
	"github.com/hardphone/hardphone/test"
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

// TestTruncated is the truncation case of issue item 9: a state file cut
// short is detected before bbolt maps it (bbolt would fault on the missing
// pages), reported, and left byte for byte as it was, so nothing more is
// lost; a cut that only removes unused tail space loses nothing at all.
func TestTruncated(t *testing.T) {
	sw := test.StartSWTPM(t)
	dir := filepath.Join(t.TempDir(), "state")
	creds, err := OpenCredentials(dir, sw.Spec, nil)
	if err != nil {
		t.Fatalf("OpenCredentials = %v", err)
	}
	values := map[string]string{}
	for i := 0; i < 40; i++ {
		// Big values, so the tree spans many pages.
		n, v := fmt.Sprintf("sip/user%02d", i), fmt.Sprintf("%02d-%s", i, bytes.Repeat([]byte("p"), 900))
		values[n] = v
		if err := creds.Put(n, []byte(v)); err != nil {
			t.Fatalf("Put = %v", err)
		}
	}
	var hwm, pageSize int64
	creds.State().DB().View(func(tx *bolt.Tx) error {
		hwm, pageSize = int64(tx.Size())/int64(tx.DB().Info().PageSize), int64(tx.DB().Info().PageSize)
		return nil
	})
	if err := creds.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	path := filepath.Join(dir, FileName)
	full, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if int64(len(full)) < hwm*pageSize {
		t.Fatalf("file %d bytes, below its high-water mark %d", len(full), hwm*pageSize)
	}

	tests := []struct {
		name string
		size int64
		ok   bool
	}{
		{"unused tail", hwm * pageSize, true},
		{"last page", (hwm - 1) * pageSize, false},
		{"half", hwm * pageSize / 2, false},
		{"mid page", hwm*pageSize - pageSize/2, false},
		{"meta only", pageSize * 2, false},
		{"inside meta", 100, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := t.TempDir()
			cut := full[:tt.size]
			if err := os.WriteFile(filepath.Join(d, FileName), cut, 0o600); err != nil {
				t.Fatalf("write: %v", err)
			}
			c, err := OpenCredentials(d, sw.Spec, nil)
			if tt.ok {
				if err != nil {
					t.Fatalf("OpenCredentials(cut to %d) = %v, want success", tt.size, err)
				}
				defer c.Close()
				for n, v := range values {
					got, err := c.Get(n)
					if err != nil || string(got) != v {
						t.Fatalf("Get(%s) after a tail cut = %v", n, err)
					}
				}
				return
			}
			if !errors.Is(err, ErrCorrupt) {
				if err == nil {
					c.Close()
				}
				t.Fatalf("OpenCredentials(cut to %d) = %v, want ErrCorrupt", tt.size, err)
			}
			after, _ := os.ReadFile(filepath.Join(d, FileName))
			if !bytes.Equal(after, cut) {
				t.Fatalf("refused Open changed the truncated file")
			}
		})
	}
}

// TestOpenCredentials: the one-call path the SIP layer uses, with the
// software protector too, and a refusal that releases everything.
func TestOpenCredentials(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	kek := "software:" + filepath.Join(dir, "kek")
	c, err := OpenCredentials(dir, kek, nil)
	if err != nil {
		t.Fatalf("OpenCredentials = %v", err)
	}
	if c.Protection() != credstore.ProtectionSoftware || !c.Protection().Weaker() {
		t.Fatalf("Protection() = %v, want software, weaker", c.Protection())
	}
	if err := c.Put("sip/alice", []byte("pw")); err != nil {
		t.Fatalf("Put = %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	sw := test.StartSWTPM(t)
	if _, err := OpenCredentials(dir, sw.Spec, nil); !errors.Is(err, credstore.ErrWrongProtector) {
		t.Fatalf("OpenCredentials(TPM on a software store) = %v, want ErrWrongProtector", err)
	}
	// The refusal closed the state file: it opens again at once.
	c, err = OpenCredentials(dir, kek, nil)
	if err != nil {
		t.Fatalf("OpenCredentials after refusal = %v", err)
	}
	defer c.Close()
	if got, err := c.Get("sip/alice"); err != nil || string(got) != "pw" {
		t.Fatalf("Get = %v", err)
	}
}
