package boltstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hardphone/hardphone/fleet/store"
)

// SetSealingKey implements store.Store.
func (s *Store) SetSealingKey(ctx context.Context, id store.DeviceID, spki []byte) error {
	if err := id.Validate(); err != nil {
		return fmt.Errorf("set sealing key: %w", err)
	}
	if err := store.CheckSealingKey(spki); err != nil {
		return fmt.Errorf("set sealing key of %s: %w", id, err)
	}
	err := s.update(ctx, func(tx *bolt.Tx) error {
		d, err := getDevice(tx, id)
		if err != nil {
			return err
		}
		if d.State != store.StateEnrolled {
			return fmt.Errorf("%w: device is %s", store.ErrState, d.State)
		}
		d.SealingPublicKey = bytes.Clone(spki)
		return putDevice(tx, d)
	})
	if err != nil {
		return fmt.Errorf("set sealing key of %s: %w", id, err)
	}
	return nil
}

type firmwareRec struct {
	Name            string `json:"name"`
	Length          int64  `json:"length"`
	SHA256          []byte `json:"sha256"`
	Compatible      string `json:"compatible"`
	Version         string `json:"version"`
	SecurityVersion uint64 `json:"security_version"`
}

type assignRec struct {
	Revision  uint64       `json:"revision"`
	Config    []byte       `json:"config,omitempty"`
	Firmware  *firmwareRec `json:"firmware,omitempty"`
	UpdatedAt time.Time    `json:"updated_at"`
	UpdatedBy string       `json:"updated_by"`
}

func scopeKey(sc store.Scope) []byte { return cat([]byte(sc.Kind), []byte{0}, []byte(sc.Name)) }

func encAssign(a store.Assignment) ([]byte, error) {
	r := assignRec{Revision: a.Revision, Config: a.Config, UpdatedAt: a.UpdatedAt, UpdatedBy: a.UpdatedBy}
	if f := a.Firmware; f != nil {
		r.Firmware = &firmwareRec{f.Name, f.Length, f.SHA256[:], f.Compatible, f.Version, f.SecurityVersion}
	}
	return json.Marshal(r)
}

func decAssign(sc store.Scope, v []byte) (store.Assignment, error) {
	var r assignRec
	if err := json.Unmarshal(v, &r); err != nil {
		return store.Assignment{}, fmt.Errorf("decode assignment %s: %w", sc, err)
	}
	a := store.Assignment{Scope: sc, Revision: r.Revision, Config: r.Config, UpdatedAt: r.UpdatedAt.UTC(), UpdatedBy: r.UpdatedBy}
	if f := r.Firmware; f != nil {
		if len(f.SHA256) != 32 {
			return store.Assignment{}, fmt.Errorf("decode assignment %s: firmware SHA-256 of %d bytes", sc, len(f.SHA256))
		}
		a.Firmware = &store.FirmwareTarget{Name: f.Name, Length: f.Length, Compatible: f.Compatible, Version: f.Version, SecurityVersion: f.SecurityVersion}
		copy(a.Firmware.SHA256[:], f.SHA256)
	}
	return a, nil
}

// GetAssignment implements store.Store.
func (s *Store) GetAssignment(ctx context.Context, sc store.Scope) (store.Assignment, error) {
	if err := sc.Validate(); err != nil {
		return store.Assignment{}, fmt.Errorf("get assignment: %w", err)
	}
	var a store.Assignment
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bAssign).Get(scopeKey(sc))
		if v == nil {
			return store.ErrNotFound
		}
		var err error
		a, err = decAssign(sc, v)
		return err
	})
	if err != nil {
		return store.Assignment{}, fmt.Errorf("get assignment %s: %w", sc, err)
	}
	return a, nil
}

// PutAssignment implements store.Store.
func (s *Store) PutAssignment(ctx context.Context, a store.Assignment, prev uint64) (store.Assignment, error) {
	if err := a.Validate(); err != nil {
		return store.Assignment{}, fmt.Errorf("put assignment: %w", err)
	}
	a.UpdatedAt = store.NormTime(a.UpdatedAt)
	a.Config = bytes.Clone(a.Config)
	if a.Firmware != nil {
		f := *a.Firmware
		a.Firmware = &f
	}
	err := s.update(ctx, func(tx *bolt.Tx) error {
		if a.Scope.Kind == store.ScopeDevice {
			if _, err := getDevice(tx, store.DeviceID(a.Scope.Name)); err != nil {
				return err
			}
		}
		b := tx.Bucket(bAssign)
		var have uint64
		if v := b.Get(scopeKey(a.Scope)); v != nil {
			cur, err := decAssign(a.Scope, v)
			if err != nil {
				return err
			}
			have = cur.Revision
		}
		if have != prev {
			return fmt.Errorf("%w: revision %d stored, %d expected", store.ErrState, have, prev)
		}
		a.Revision = prev + 1
		v, err := encAssign(a)
		if err != nil {
			return err
		}
		return b.Put(scopeKey(a.Scope), v)
	})
	if err != nil {
		return store.Assignment{}, fmt.Errorf("put assignment %s: %w", a.Scope, err)
	}
	return a, nil
}

// DeleteAssignment implements store.Store.
func (s *Store) DeleteAssignment(ctx context.Context, sc store.Scope) error {
	if err := sc.Validate(); err != nil {
		return fmt.Errorf("delete assignment: %w", err)
	}
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bAssign)
		if b.Get(scopeKey(sc)) == nil {
			return store.ErrNotFound
		}
		return b.Delete(scopeKey(sc))
	})
	if err != nil {
		return fmt.Errorf("delete assignment %s: %w", sc, err)
	}
	return nil
}

type provRec struct {
	Rev   uint64    `json:"rev"`
	DueAt time.Time `json:"due_at"`
	Data  []byte    `json:"data"`
}

func decProv(id store.DeviceID, v []byte) (store.Provision, error) {
	var r provRec
	if err := json.Unmarshal(v, &r); err != nil {
		return store.Provision{}, fmt.Errorf("decode provision %s: %w", id, err)
	}
	return store.Provision{DeviceID: id, Rev: r.Rev, DueAt: r.DueAt.UTC(), Data: r.Data}, nil
}

// GetProvision implements store.Store.
func (s *Store) GetProvision(ctx context.Context, id store.DeviceID) (store.Provision, error) {
	if err := id.Validate(); err != nil {
		return store.Provision{}, fmt.Errorf("get provision: %w", err)
	}
	var p store.Provision
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bProv).Get([]byte(id))
		if v == nil {
			return store.ErrNotFound
		}
		var err error
		p, err = decProv(id, v)
		return err
	})
	if err != nil {
		return store.Provision{}, fmt.Errorf("get provision %s: %w", id, err)
	}
	return p, nil
}

// PutProvision implements store.Store.
func (s *Store) PutProvision(ctx context.Context, p store.Provision, prev uint64) (store.Provision, error) {
	if err := p.Validate(); err != nil {
		return store.Provision{}, fmt.Errorf("put provision: %w", err)
	}
	p.DueAt = store.NormTime(p.DueAt)
	p.Data = bytes.Clone(p.Data)
	err := s.update(ctx, func(tx *bolt.Tx) error {
		if _, err := getDevice(tx, p.DeviceID); err != nil {
			return err
		}
		b, due := tx.Bucket(bProv), tx.Bucket(bProvDue)
		var have uint64
		if v := b.Get([]byte(p.DeviceID)); v != nil {
			cur, err := decProv(p.DeviceID, v)
			if err != nil {
				return err
			}
			have = cur.Rev
			if have == prev {
				if err := due.Delete(cat(micros(cur.DueAt), []byte(p.DeviceID))); err != nil {
					return err
				}
			}
		}
		if have != prev {
			return fmt.Errorf("%w: revision %d stored, %d expected", store.ErrState, have, prev)
		}
		p.Rev = prev + 1
		v, err := json.Marshal(provRec{p.Rev, p.DueAt, p.Data})
		if err != nil {
			return err
		}
		if err := b.Put([]byte(p.DeviceID), v); err != nil {
			return err
		}
		return due.Put(cat(micros(p.DueAt), []byte(p.DeviceID)), nil)
	})
	if err != nil {
		return store.Provision{}, fmt.Errorf("put provision %s: %w", p.DeviceID, err)
	}
	return p, nil
}

// ListProvisionDue implements store.Store.
func (s *Store) ListProvisionDue(ctx context.Context, before time.Time, limit int) ([]store.DeviceID, error) {
	if err := store.ValidLimit(limit, store.MaxPageSize); err != nil {
		return nil, fmt.Errorf("list provision due: %w", err)
	}
	if err := store.CheckTime("before", before); err != nil {
		return nil, fmt.Errorf("list provision due: %w", err)
	}
	end := micros(store.NormTime(before))
	var out []store.DeviceID
	err := s.view(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(bProvDue).Cursor()
		for k, _ := c.First(); k != nil && len(out) < limit; k, _ = c.Next() {
			if len(k) < 8 || bytes.Compare(k[:8], end) > 0 {
				break
			}
			out = append(out, store.DeviceID(k[8:]))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list provision due: %w", err)
	}
	return out, nil
}
