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

var _ store.RolloutStore = (*Store)(nil)

type rolloutRec struct {
	Group     string    `json:"group"`
	Active    bool      `json:"active"`
	Rev       uint64    `json:"rev"`
	CreatedAt time.Time `json:"created_at"`
	Data      []byte    `json:"data"`
}

func decRollout(id []byte, v []byte) (store.Rollout, error) {
	var r rolloutRec
	if err := json.Unmarshal(v, &r); err != nil {
		return store.Rollout{}, fmt.Errorf("decode rollout %s: %w", id, err)
	}
	return store.Rollout{ID: store.RolloutID(id), Group: r.Group, Active: r.Active, Rev: r.Rev, CreatedAt: r.CreatedAt.UTC(), Data: r.Data}, nil
}

func putRollout(tx *bolt.Tx, r store.Rollout) error {
	v, err := json.Marshal(rolloutRec{r.Group, r.Active, r.Rev, r.CreatedAt, r.Data})
	if err != nil {
		return err
	}
	return tx.Bucket(bRollout).Put([]byte(r.ID), v)
}

func getRollout(tx *bolt.Tx, id store.RolloutID) (store.Rollout, error) {
	v := tx.Bucket(bRollout).Get([]byte(id))
	if v == nil {
		return store.Rollout{}, store.ErrNotFound
	}
	return decRollout([]byte(id), v)
}

type rolloutDevRec struct {
	Rev  uint64 `json:"rev"`
	Data []byte `json:"data"`
}

func rdevKey(id store.RolloutID, dev store.DeviceID) []byte {
	return cat([]byte(id), []byte{0}, []byte(dev))
}

// CreateRollout implements store.RolloutStore.
func (s *Store) CreateRollout(ctx context.Context, r store.Rollout, devices []store.RolloutDevice) (store.Rollout, error) {
	if err := r.Validate(); err != nil {
		return store.Rollout{}, fmt.Errorf("create rollout: %w", err)
	}
	if len(devices) > store.MaxRolloutDevices {
		return store.Rollout{}, fmt.Errorf("create rollout: %w: %d devices, at most %d", store.ErrInvalid, len(devices), store.MaxRolloutDevices)
	}
	seen := make(map[store.DeviceID]bool, len(devices))
	for _, d := range devices {
		if d.Rollout != r.ID {
			return store.Rollout{}, fmt.Errorf("create rollout: %w: device %s belongs to rollout %s", store.ErrInvalid, d.Device, d.Rollout)
		}
		if err := d.Validate(); err != nil {
			return store.Rollout{}, fmt.Errorf("create rollout: %w", err)
		}
		if seen[d.Device] {
			return store.Rollout{}, fmt.Errorf("create rollout: %w: device %s twice", store.ErrInvalid, d.Device)
		}
		seen[d.Device] = true
	}
	r.Rev, r.CreatedAt, r.Data = 1, store.NormTime(r.CreatedAt), bytes.Clone(r.Data)
	err := s.update(ctx, func(tx *bolt.Tx) error {
		if tx.Bucket(bRollout).Get([]byte(r.ID)) != nil {
			return fmt.Errorf("%w: rollout %s", store.ErrExists, r.ID)
		}
		act := tx.Bucket(bRolloutAct)
		if r.Active {
			if other := act.Get([]byte(r.Group)); other != nil {
				return fmt.Errorf("%w: group %s has active rollout %s", store.ErrExists, r.Group, other)
			}
			if err := act.Put([]byte(r.Group), []byte(r.ID)); err != nil {
				return err
			}
		}
		if err := putRollout(tx, r); err != nil {
			return err
		}
		if err := tx.Bucket(bRolloutTime).Put(cat(micros(r.CreatedAt), []byte(r.ID)), nil); err != nil {
			return err
		}
		b := tx.Bucket(bRolloutDev)
		for _, d := range devices {
			v, err := json.Marshal(rolloutDevRec{1, d.Data})
			if err != nil {
				return err
			}
			if err := b.Put(rdevKey(r.ID, d.Device), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return store.Rollout{}, fmt.Errorf("create rollout %s: %w", r.ID, err)
	}
	return r, nil
}

// GetRollout implements store.RolloutStore.
func (s *Store) GetRollout(ctx context.Context, id store.RolloutID) (store.Rollout, error) {
	if err := id.Validate(); err != nil {
		return store.Rollout{}, fmt.Errorf("get rollout: %w", err)
	}
	var r store.Rollout
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		r, err = getRollout(tx, id)
		return err
	})
	if err != nil {
		return store.Rollout{}, fmt.Errorf("get rollout %s: %w", id, err)
	}
	return r, nil
}

// PutRollout implements store.RolloutStore.
func (s *Store) PutRollout(ctx context.Context, r store.Rollout, prev uint64) (store.Rollout, error) {
	if err := r.Validate(); err != nil {
		return store.Rollout{}, fmt.Errorf("put rollout: %w", err)
	}
	var out store.Rollout
	err := s.update(ctx, func(tx *bolt.Tx) error {
		cur, err := getRollout(tx, r.ID)
		if err != nil {
			return err
		}
		if cur.Rev != prev {
			return fmt.Errorf("%w: revision %d stored, %d expected", store.ErrState, cur.Rev, prev)
		}
		if r.Active && !cur.Active {
			return fmt.Errorf("%w: a rollout that ended does not start again", store.ErrState)
		}
		if cur.Active && !r.Active {
			if err := tx.Bucket(bRolloutAct).Delete([]byte(cur.Group)); err != nil {
				return err
			}
		}
		out = store.Rollout{ID: cur.ID, Group: cur.Group, Active: r.Active, Rev: prev + 1, CreatedAt: cur.CreatedAt, Data: bytes.Clone(r.Data)}
		return putRollout(tx, out)
	})
	if err != nil {
		return store.Rollout{}, fmt.Errorf("put rollout %s: %w", r.ID, err)
	}
	return out, nil
}

// ListRollouts implements store.RolloutStore.
func (s *Store) ListRollouts(ctx context.Context, p store.PageRequest) (store.Page[store.Rollout], error) {
	var pg store.Page[store.Rollout]
	if err := p.Validate(); err != nil {
		return pg, fmt.Errorf("list rollouts: %w", err)
	}
	if p.After != "" {
		if err := store.RolloutID(p.After).Validate(); err != nil {
			return pg, fmt.Errorf("list rollouts: page cursor: %w", err)
		}
	}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(bRolloutTime).Cursor()
		var k []byte
		if p.After == "" {
			k, _ = c.Last()
		} else {
			cur, err := getRollout(tx, store.RolloutID(p.After))
			if err != nil {
				return fmt.Errorf("page cursor: %w", err)
			}
			c.Seek(cat(micros(cur.CreatedAt), []byte(cur.ID)))
			k, _ = c.Prev()
		}
		for ; k != nil; k, _ = c.Prev() {
			if len(pg.Items) == p.Limit {
				pg.Next = string(pg.Items[len(pg.Items)-1].ID)
				return nil
			}
			r, err := getRollout(tx, store.RolloutID(k[8:]))
			if err != nil {
				return err
			}
			pg.Items = append(pg.Items, r)
		}
		return nil
	})
	if err != nil {
		return store.Page[store.Rollout]{}, fmt.Errorf("list rollouts: %w", err)
	}
	return pg, nil
}

// ListActiveRollouts implements store.RolloutStore.
func (s *Store) ListActiveRollouts(ctx context.Context) ([]store.Rollout, error) {
	var out []store.Rollout
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bRolloutAct).ForEach(func(_, id []byte) error {
			if len(out) == store.MaxPageSize {
				return nil
			}
			r, err := getRollout(tx, store.RolloutID(id))
			if err != nil {
				return err
			}
			out = append(out, r)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list active rollouts: %w", err)
	}
	return out, nil
}

// ActiveRolloutOf implements store.RolloutStore.
func (s *Store) ActiveRolloutOf(ctx context.Context, group string) (store.Rollout, error) {
	var r store.Rollout
	err := s.view(ctx, func(tx *bolt.Tx) error {
		id := tx.Bucket(bRolloutAct).Get([]byte(group))
		if id == nil {
			return store.ErrNotFound
		}
		var err error
		r, err = getRollout(tx, store.RolloutID(id))
		return err
	})
	if err != nil {
		return store.Rollout{}, fmt.Errorf("active rollout of %.64q: %w", group, err)
	}
	return r, nil
}

// GetRolloutDevice implements store.RolloutStore.
func (s *Store) GetRolloutDevice(ctx context.Context, id store.RolloutID, dev store.DeviceID) (store.RolloutDevice, error) {
	if err := id.Validate(); err != nil {
		return store.RolloutDevice{}, fmt.Errorf("get rollout device: %w", err)
	}
	if err := dev.Validate(); err != nil {
		return store.RolloutDevice{}, fmt.Errorf("get rollout device: %w", err)
	}
	out := store.RolloutDevice{Rollout: id, Device: dev}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bRolloutDev).Get(rdevKey(id, dev))
		if v == nil {
			return store.ErrNotFound
		}
		var r rolloutDevRec
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("decode: %w", err)
		}
		out.Rev, out.Data = r.Rev, r.Data
		return nil
	})
	if err != nil {
		return store.RolloutDevice{}, fmt.Errorf("get rollout %s device %s: %w", id, dev, err)
	}
	return out, nil
}

// PutRolloutDevice implements store.RolloutStore.
func (s *Store) PutRolloutDevice(ctx context.Context, d store.RolloutDevice, prev uint64) (store.RolloutDevice, error) {
	if err := d.Validate(); err != nil {
		return store.RolloutDevice{}, fmt.Errorf("put rollout device: %w", err)
	}
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bRolloutDev)
		v := b.Get(rdevKey(d.Rollout, d.Device))
		if v == nil {
			return store.ErrNotFound
		}
		var r rolloutDevRec
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("decode: %w", err)
		}
		if r.Rev != prev {
			return fmt.Errorf("%w: revision %d stored, %d expected", store.ErrState, r.Rev, prev)
		}
		nv, err := json.Marshal(rolloutDevRec{prev + 1, d.Data})
		if err != nil {
			return err
		}
		return b.Put(rdevKey(d.Rollout, d.Device), nv)
	})
	if err != nil {
		return store.RolloutDevice{}, fmt.Errorf("put rollout %s device %s: %w", d.Rollout, d.Device, err)
	}
	d.Rev, d.Data = prev+1, bytes.Clone(d.Data)
	return d, nil
}

// ListRolloutDevices implements store.RolloutStore.
func (s *Store) ListRolloutDevices(ctx context.Context, id store.RolloutID, p store.PageRequest) (store.Page[store.RolloutDevice], error) {
	var pg store.Page[store.RolloutDevice]
	if err := id.Validate(); err != nil {
		return pg, fmt.Errorf("list rollout devices: %w", err)
	}
	if err := p.Validate(); err != nil {
		return pg, fmt.Errorf("list rollout devices: %w", err)
	}
	after, err := store.ParseDeviceCursor(p.After)
	if err != nil {
		return pg, fmt.Errorf("list rollout devices: %w", err)
	}
	prefix := cat([]byte(id), []byte{0})
	err = s.view(ctx, func(tx *bolt.Tx) error {
		if tx.Bucket(bRollout).Get([]byte(id)) == nil {
			return store.ErrNotFound
		}
		c := tx.Bucket(bRolloutDev).Cursor()
		start := prefix
		if after != "" {
			start = rdevKey(id, after)
		}
		for k, v := c.Seek(start); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			dev := store.DeviceID(k[len(prefix):])
			if dev == after {
				continue
			}
			if len(pg.Items) == p.Limit {
				pg.Next = string(pg.Items[len(pg.Items)-1].Device)
				return nil
			}
			var r rolloutDevRec
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode device %s: %w", dev, err)
			}
			pg.Items = append(pg.Items, store.RolloutDevice{Rollout: id, Device: dev, Rev: r.Rev, Data: r.Data})
		}
		return nil
	})
	if err != nil {
		return store.Page[store.RolloutDevice]{}, fmt.Errorf("list rollout %s devices: %w", id, err)
	}
	return pg, nil
}

type approverRec struct {
	Admin        string    `json:"admin"`
	PublicKey    []byte    `json:"public_key"`
	RegisteredAt time.Time `json:"registered_at"`
}

// PutApproverKey implements store.RolloutStore.
func (s *Store) PutApproverKey(ctx context.Context, k store.ApproverKey) error {
	if err := k.Validate(); err != nil {
		return fmt.Errorf("put approver key: %w", err)
	}
	k.RegisteredAt = store.NormTime(k.RegisteredAt)
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b, adm := tx.Bucket(bApprover), tx.Bucket(bApproverAdm)
		if b.Get([]byte(k.KeyID)) != nil {
			return fmt.Errorf("%w: key %s is registered", store.ErrExists, k.KeyID)
		}
		if adm.Get([]byte(k.Admin)) != nil {
			return fmt.Errorf("%w: admin %s has a key", store.ErrExists, k.Admin)
		}
		v, err := json.Marshal(approverRec{k.Admin, k.PublicKey, k.RegisteredAt})
		if err != nil {
			return err
		}
		if err := b.Put([]byte(k.KeyID), v); err != nil {
			return err
		}
		return adm.Put([]byte(k.Admin), []byte(k.KeyID))
	})
	if err != nil {
		return fmt.Errorf("put approver key: %w", err)
	}
	return nil
}

func decApprover(id, v []byte) (store.ApproverKey, error) {
	var r approverRec
	if err := json.Unmarshal(v, &r); err != nil {
		return store.ApproverKey{}, fmt.Errorf("decode approver key %s: %w", id, err)
	}
	return store.ApproverKey{KeyID: string(id), Admin: r.Admin, PublicKey: r.PublicKey, RegisteredAt: r.RegisteredAt.UTC()}, nil
}

// GetApproverKey implements store.RolloutStore.
func (s *Store) GetApproverKey(ctx context.Context, keyID string) (store.ApproverKey, error) {
	var k store.ApproverKey
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bApprover).Get([]byte(keyID))
		if v == nil {
			return store.ErrNotFound
		}
		var err error
		k, err = decApprover([]byte(keyID), v)
		return err
	})
	if err != nil {
		return store.ApproverKey{}, fmt.Errorf("get approver key %.64q: %w", keyID, err)
	}
	return k, nil
}

// ListApproverKeys implements store.RolloutStore.
func (s *Store) ListApproverKeys(ctx context.Context) ([]store.ApproverKey, error) {
	var out []store.ApproverKey
	err := s.view(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(bApprover).Cursor()
		for k, v := c.First(); k != nil && len(out) < store.MaxPageSize; k, v = c.Next() {
			ak, err := decApprover(k, v)
			if err != nil {
				return err
			}
			out = append(out, ak)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list approver keys: %w", err)
	}
	return out, nil
}

// DeleteApproverKey implements store.RolloutStore.
func (s *Store) DeleteApproverKey(ctx context.Context, keyID string) error {
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bApprover)
		v := b.Get([]byte(keyID))
		if v == nil {
			return store.ErrNotFound
		}
		k, err := decApprover([]byte(keyID), v)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bApproverAdm).Delete([]byte(k.Admin)); err != nil {
			return err
		}
		return b.Delete([]byte(keyID))
	})
	if err != nil {
		return fmt.Errorf("delete approver key %.64q: %w", keyID, err)
	}
	return nil
}
