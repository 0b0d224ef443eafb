package credstore

import (
	"bytes"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Put stores value under name ("sip/alice"), replacing any earlier value
// and incrementing the version bound into the record.
func (s *Store) Put(name string, value []byte) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("put %q: %w", name, err)
	}
	if len(value) == 0 || len(value) > maxValueLen {
		return fmt.Errorf("put %q: %w: %d bytes, want 1..%d", name, errBadValue, len(value), maxValueLen)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, err := s.currentKeysLocked()
	if err != nil {
		return fmt.Errorf("put %q: %w", name, err)
	}
	var version uint64
	err = s.db.Update(func(tx *bolt.Tx) error {
		b, err := nested(tx, bucketValues)
		if err != nil {
			return err
		}
		rec, err := s.nextRecord(k, b, adValues, name, value)
		if err != nil {
			return err
		}
		version = rec.version
		return b.Put([]byte(name), rec.bytes)
	})
	if err != nil {
		return fmt.Errorf("put %q: %w", name, err)
	}
	s.log.Info("credential stored", "name", name, "version", version)
	return nil
}

type newRecord struct {
	version uint64
	bytes   []byte
}

// nextRecord seals plaintext as the successor of whatever record b holds
// under name: version one higher, creation time kept. A damaged old record
// is replaced; its version is still honoured when its header parses.
func (s *Store) nextRecord(k *keys, b *bolt.Bucket, bucket, name string, plaintext []byte) (newRecord, error) {
	now := s.now()
	h := header{version: 1, created: now, updated: now}
	if old := b.Get([]byte(name)); old != nil {
		if oh, pt, err := openRecord(k.aead, bucket, name, old); err == nil {
			clear(pt)
			h.version, h.created = oh.version+1, oh.created
		} else if oh, err := parseHeader(old); err == nil {
			h.version = oh.version + 1
		}
	}
	rec, err := sealRecord(k.aead, bucket, name, h, plaintext)
	if err != nil {
		return newRecord{}, err
	}
	return newRecord{version: h.version, bytes: rec}, nil
}

// Get returns the value stored under name. It wraps ErrNotFound for a
// name the store does not hold and ErrCorrupt for a record that fails
// authentication; with a PCR policy it asks the TPM first and wraps
// ErrPolicy when a bound PCR changed.
func (s *Store) Get(name string) (Secret, error) {
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("get %q: %w", name, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, err := s.currentKeysLocked()
	if err != nil {
		return nil, fmt.Errorf("get %q: %w", name, err)
	}
	rec, err := s.rawRecord(bucketValues, name)
	if err != nil {
		return nil, fmt.Errorf("get %q: %w", name, err)
	}
	_, pt, err := openRecord(k.aead, adValues, name, rec)
	if err != nil {
		return nil, corrupt(fmt.Sprintf("credential %q", name), err)
	}
	return Secret(pt), nil
}

// rawRecord copies the record stored under name out of bucket.
func (s *Store) rawRecord(bucket []byte, name string) ([]byte, error) {
	var rec []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		b, err := nested(tx, bucket)
		if err != nil {
			return err
		}
		rec = bytes.Clone(b.Get([]byte(name)))
		return nil
	})
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, ErrNotFound
	}
	return rec, nil
}

// Delete removes name. It wraps ErrNotFound when there is nothing to
// remove.
func (s *Store) Delete(name string) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("delete %q: %w", name, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return fmt.Errorf("delete %q: %w", name, errClosed)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := nested(tx, bucketValues)
		if err != nil {
			return err
		}
		if b.Get([]byte(name)) == nil {
			return ErrNotFound
		}
		if err := b.Delete([]byte(name)); err != nil {
			return err
		}
		// A value filled from a sealed one may be filled again.
		sb, err := nested(tx, bucketSealed)
		if err != nil {
			return err
		}
		return sb.Delete([]byte(name))
	})
	if err != nil {
		return fmt.Errorf("delete %q: %w", name, err)
	}
	s.log.Info("credential deleted", "name", name)
	return nil
}

// Info describes a stored credential, never its value.
type Info struct {
	Name    string
	Version uint64
	Created time.Time
	Updated time.Time
	// Size is the value's length in bytes.
	Size int
	// Err is set (wrapping ErrCorrupt) when the record fails
	// authentication; the other fields are then zero.
	Err error
}

// List returns every credential in name order. Each record is
// authenticated, so a damaged one shows up with Err set rather than with
// metadata nobody vouches for.
func (s *Store) List() ([]Info, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, err := s.currentKeysLocked()
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	var out []Info
	err = s.db.View(func(tx *bolt.Tx) error {
		b, err := nested(tx, bucketValues)
		if err != nil {
			return err
		}
		return b.ForEach(func(key, rec []byte) error {
			name := string(key)
			h, pt, err := openRecord(k.aead, adValues, name, rec)
			if err != nil {
				out = append(out, Info{Name: name, Err: corrupt(fmt.Sprintf("credential %q", name), err)})
				return nil
			}
			out = append(out, Info{Name: name, Version: h.version, Created: h.created, Updated: h.updated, Size: len(pt)})
			clear(pt)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	return out, nil
}
