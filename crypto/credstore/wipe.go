package credstore

import (
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Wipe is the factory reset of the credential store. It destroys the KEK
// first (TPM: increments the generation counter the KEK is sealed to, so
// neither this database nor any copy of it can ever be unsealed again;
// software: overwrites and removes the KEK file), then deletes every
// record, identity included. NV counters are kept: the generation counter
// and the updater's anti-rollback counter only ever go up. Wipe needs no
// working KEK, so it also clears a store Open refuses (changed PCRs,
// damaged records). If it fails after the KEK is destroyed, Open reports
// ErrWiped and Wipe can be run again.
func Wipe(db *bolt.DB, p *Protector) error {
	if db == nil || p == nil {
		return errors.New("wipe: nil db or protector")
	}
	var rec *kekRecord
	if err := db.View(func(tx *bolt.Tx) error {
		meta, err := metaBucket(tx)
		if err != nil {
			return nil // no store here yet
		}
		for _, k := range kekKeys {
			if r, err := parseKEKRecord(meta.Get(k)); err == nil {
				rec = r
				return nil
			}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("wipe: %w", err)
	}
	if rec != nil && rec.protection != p.Protection() {
		return fmt.Errorf("wipe: %w: the store is %s-protected, the protector is %s", ErrWrongProtector, rec.protection, p.Protection())
	}
	if err := p.impl.destroy(rec); err != nil {
		return fmt.Errorf("wipe: %w", err)
	}
	err := db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketTop); err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("wipe: KEK destroyed, records not deleted: %w", err)
	}
	return nil
}

// Wipe closes the store and wipes it (see the package function Wipe).
func (s *Store) Wipe() error {
	if err := s.Close(); err != nil {
		return fmt.Errorf("wipe: %w", err)
	}
	if err := Wipe(s.db, s.p); err != nil {
		return err
	}
	s.log.Warn("credential store wiped: KEK destroyed, every credential and the identity gone")
	return nil
}
