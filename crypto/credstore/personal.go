package credstore

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// Personal data (call history, contacts) is not a credential, but it is
// the phone user's and must not be readable from a copy of the state file:
// it is sealed like credentials (AES-256-GCM under the KEK, name and
// version bound in), in a bucket of its own, and is not logged at all.
// Record names are stored in clear: callers make them say nothing (a
// sequence number, a random ID).
var bucketPersonal = []byte("personal")

const adPersonal = "personal"

// PutPersonal stores personal data under name.
func (s *Store) PutPersonal(name string, value []byte) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("put personal %q: %w", name, err)
	}
	if len(value) == 0 || len(value) > maxValueLen {
		return fmt.Errorf("put personal %q: %w: %d bytes, want 1..%d", name, errBadValue, len(value), maxValueLen)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, err := s.currentKeysLocked()
	if err != nil {
		return fmt.Errorf("put personal %q: %w", name, err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		top := tx.Bucket(bucketTop)
		if top == nil {
			return errors.New("credential store bucket missing")
		}
		b, err := top.CreateBucketIfNotExists(bucketPersonal)
		if err != nil {
			return err
		}
		rec, err := s.nextRecord(k, b, adPersonal, name, value)
		if err != nil {
			return err
		}
		return b.Put([]byte(name), rec.bytes)
	})
	if err != nil {
		return fmt.Errorf("put personal %q: %w", name, err)
	}
	return nil
}

// GetPersonal returns the personal data stored under name (ErrNotFound,
// ErrCorrupt as Get).
func (s *Store) GetPersonal(name string) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("get personal %q: %w", name, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, err := s.currentKeysLocked()
	if err != nil {
		return nil, fmt.Errorf("get personal %q: %w", name, err)
	}
	var rec []byte
	err = s.db.View(func(tx *bolt.Tx) error {
		if b := personal(tx); b != nil {
			rec = bytes.Clone(b.Get([]byte(name)))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, fmt.Errorf("get personal %q: %w", name, ErrNotFound)
	}
	_, pt, err := openRecord(k.aead, adPersonal, name, rec)
	if err != nil {
		return nil, corrupt(fmt.Sprintf("personal record %q", name), err)
	}
	return pt, nil
}

// ListPersonal returns the names under prefix, in order.
func (s *Store) ListPersonal(prefix string) ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, errClosed
	}
	var names []string
	err := s.db.View(func(tx *bolt.Tx) error {
		b := personal(tx)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, _ := c.Seek([]byte(prefix)); k != nil && strings.HasPrefix(string(k), prefix); k, _ = c.Next() {
			names = append(names, string(k))
		}
		return nil
	})
	return names, err
}

// DeletePersonal removes name; a name that is not there is no error.
func (s *Store) DeletePersonal(name string) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return errClosed
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if b := personal(tx); b != nil {
			return b.Delete([]byte(name))
		}
		return nil
	})
}

func personal(tx *bolt.Tx) *bolt.Bucket {
	top := tx.Bucket(bucketTop)
	if top == nil {
		return nil
	}
	return top.Bucket(bucketPersonal)
}
