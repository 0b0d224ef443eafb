package boltstore

import (
	"bytes"
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hardphone/hardphone/fleet/store"
)

// PutChallenge implements store.Store.
func (s *Store) PutChallenge(ctx context.Context, c store.Challenge) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("put challenge: %w", err)
	}
	c.CreatedAt, c.ExpiresAt = store.NormTime(c.CreatedAt), store.NormTime(c.ExpiresAt)
	err := s.update(ctx, func(tx *bolt.Tx) error {
		if tx.Bucket(bAllow).Get(c.EK[:]) == nil {
			return fmt.Errorf("%w: EK %s", store.ErrNotAllowed, c.EK)
		}
		chal := tx.Bucket(bChal)
		if chal.Get(c.ID[:]) != nil {
			return fmt.Errorf("%w: challenge %s", store.ErrExists, c.ID)
		}
		ids, err := challengesOf(tx, c.EK)
		if err != nil {
			return err
		}
		live := 0
		for _, id := range ids {
			old, err := decChal(id[:], chal.Get(id[:]))
			if err != nil {
				return err
			}
			if old.ExpiresAt.After(c.CreatedAt) {
				live++
				continue
			}
			if err := deleteChallenge(tx, id); err != nil {
				return err
			}
		}
		if live >= store.MaxChallengesPerEK {
			return fmt.Errorf("%w: EK %s has %d challenges outstanding", store.ErrLimit, c.EK, live)
		}
		v, err := encChal(c)
		if err != nil {
			return err
		}
		if err := chal.Put(c.ID[:], v); err != nil {
			return err
		}
		if err := tx.Bucket(bChalEK).Put(cat(c.EK[:], c.ID[:]), nil); err != nil {
			return err
		}
		return tx.Bucket(bChalExp).Put(cat(micros(c.ExpiresAt), c.ID[:]), nil)
	})
	if err != nil {
		return fmt.Errorf("put challenge: %w", err)
	}
	return nil
}

// ConsumeChallenge implements store.Store. bbolt runs one write
// transaction at a time, so of concurrent callers exactly one finds the
// record.
func (s *Store) ConsumeChallenge(ctx context.Context, id store.ChallengeID, now time.Time) (store.Challenge, error) {
	if err := store.CheckTime("now", now); err != nil {
		return store.Challenge{}, fmt.Errorf("consume challenge %s: %w", id, err)
	}
	var c store.Challenge
	err := s.update(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bChal).Get(id[:])
		if v == nil {
			return store.ErrNotFound
		}
		var err error
		if c, err = decChal(id[:], v); err != nil {
			return err
		}
		return deleteChallenge(tx, id)
	})
	if err != nil {
		return store.Challenge{}, fmt.Errorf("consume challenge %s: %w", id, err)
	}
	if !c.ExpiresAt.After(store.NormTime(now)) {
		return c, fmt.Errorf("consume challenge %s: %w at %v", id, store.ErrExpired, c.ExpiresAt)
	}
	return c, nil
}

// PurgeChallenges implements store.Store.
func (s *Store) PurgeChallenges(ctx context.Context, now time.Time) (int, error) {
	if err := store.CheckTime("now", now); err != nil {
		return 0, fmt.Errorf("purge challenges: %w", err)
	}
	n := 0
	err := s.update(ctx, func(tx *bolt.Tx) error {
		n = 0
		var expired []store.ChallengeID
		limit := micros(store.NormTime(now))
		c := tx.Bucket(bChalExp).Cursor()
		// Expired means ExpiresAt <= now: keys up to and including now.
		for k, _ := c.First(); k != nil && bytes.Compare(k[:8], limit) <= 0; k, _ = c.Next() {
			var id store.ChallengeID
			copy(id[:], k[8:])
			expired = append(expired, id)
		}
		for _, id := range expired {
			if err := deleteChallenge(tx, id); err != nil {
				return err
			}
		}
		n = len(expired)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("purge challenges: %w", err)
	}
	return n, nil
}

// challengesOf lists the IDs of a TPM's challenges.
func challengesOf(tx *bolt.Tx, ek store.EKHash) ([]store.ChallengeID, error) {
	var ids []store.ChallengeID
	c := tx.Bucket(bChalEK).Cursor()
	for k, _ := c.Seek(ek[:]); k != nil && bytes.HasPrefix(k, ek[:]); k, _ = c.Next() {
		if len(k) != len(ek)+len(store.ChallengeID{}) {
			return nil, fmt.Errorf("challenge index key of %d bytes", len(k))
		}
		var id store.ChallengeID
		copy(id[:], k[len(ek):])
		ids = append(ids, id)
	}
	return ids, nil
}

// deleteChallenge removes a challenge and its index entries.
func deleteChallenge(tx *bolt.Tx, id store.ChallengeID) error {
	chal := tx.Bucket(bChal)
	v := chal.Get(id[:])
	if v == nil {
		return nil
	}
	c, err := decChal(id[:], v)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bChalEK).Delete(cat(c.EK[:], id[:])); err != nil {
		return err
	}
	if err := tx.Bucket(bChalExp).Delete(cat(micros(c.ExpiresAt), id[:])); err != nil {
		return err
	}
	return chal.Delete(id[:])
}
