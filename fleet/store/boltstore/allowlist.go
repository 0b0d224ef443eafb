package boltstore

import (
	"bytes"
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/hardphone/hardphone/fleet/store"
)

// ImportAllowList implements store.Store.
func (s *Store) ImportAllowList(ctx context.Context, entries []store.AllowEntry) (store.ImportResult, error) {
	if err := store.ValidateImport(entries); err != nil {
		return store.ImportResult{}, fmt.Errorf("import allow-list: %w", err)
	}
	var res store.ImportResult
	err := s.update(ctx, func(tx *bolt.Tx) error {
		allow, bySerial := tx.Bucket(bAllow), tx.Bucket(bAllowSerial)
		res = store.ImportResult{}
		for _, e := range entries {
			e.ImportedAt = store.NormTime(e.ImportedAt)
			if owner := bySerial.Get([]byte(e.Serial)); owner != nil && !bytes.Equal(owner, e.EK[:]) {
				return fmt.Errorf("%w: serial %q is on the allow-list for EK %x, not %s", store.ErrExists, e.Serial, owner, e.EK)
			}
			if v := allow.Get(e.EK[:]); v != nil {
				old, err := decAllow(e.EK[:], v)
				if err != nil {
					return err
				}
				if old.SameContent(e) {
					res.Unchanged++
					continue
				}
				if old.Serial != e.Serial {
					if err := bySerial.Delete([]byte(old.Serial)); err != nil {
						return err
					}
				}
				res.Updated++
			} else {
				res.Added++
			}
			v, err := encAllow(e)
			if err != nil {
				return err
			}
			if err := allow.Put(e.EK[:], v); err != nil {
				return err
			}
			if err := bySerial.Put([]byte(e.Serial), e.EK[:]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return store.ImportResult{}, fmt.Errorf("import allow-list: %w", err)
	}
	return res, nil
}

// LookupAllowed implements store.Store.
func (s *Store) LookupAllowed(ctx context.Context, ek store.EKHash) (store.AllowEntry, error) {
	var e store.AllowEntry
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bAllow).Get(ek[:])
		if v == nil {
			return store.ErrNotFound
		}
		var err error
		e, err = decAllow(ek[:], v)
		return err
	})
	if err != nil {
		return store.AllowEntry{}, fmt.Errorf("look up allow-list entry %s: %w", ek, err)
	}
	return e, nil
}

// ListAllowed implements store.Store.
func (s *Store) ListAllowed(ctx context.Context, p store.PageRequest) (store.Page[store.AllowEntry], error) {
	var page store.Page[store.AllowEntry]
	if err := p.Validate(); err != nil {
		return page, fmt.Errorf("list allow-list: %w", err)
	}
	after, start, err := store.ParseEKCursor(p.After)
	if err != nil {
		return page, fmt.Errorf("list allow-list: %w", err)
	}
	err = s.view(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(bAllow).Cursor()
		k, v := c.First()
		if !start {
			k, v = c.Seek(after[:])
			if k != nil && bytes.Equal(k, after[:]) {
				k, v = c.Next()
			}
		}
		for ; k != nil; k, v = c.Next() {
			if len(page.Items) == p.Limit {
				page.Next = page.Items[len(page.Items)-1].EK.String()
				return nil
			}
			e, err := decAllow(k, v)
			if err != nil {
				return err
			}
			page.Items = append(page.Items, e)
		}
		return nil
	})
	if err != nil {
		return store.Page[store.AllowEntry]{}, fmt.Errorf("list allow-list: %w", err)
	}
	return page, nil
}

// RemoveAllowed implements store.Store.
func (s *Store) RemoveAllowed(ctx context.Context, ek store.EKHash) error {
	err := s.update(ctx, func(tx *bolt.Tx) error {
		allow := tx.Bucket(bAllow)
		v := allow.Get(ek[:])
		if v == nil {
			return store.ErrNotFound
		}
		e, err := decAllow(ek[:], v)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bAllowSerial).Delete([]byte(e.Serial)); err != nil {
			return err
		}
		if err := allow.Delete(ek[:]); err != nil {
			return err
		}
		// The TPM's enrolment rounds under way end with it.
		ids, err := challengesOf(tx, ek)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := deleteChallenge(tx, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("remove allow-list entry %s: %w", ek, err)
	}
	return nil
}
