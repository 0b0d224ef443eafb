package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hardphone/hardphone/fleet/store"
)

var _ store.RolloutStore = (*Store)(nil)

// Pool returns the store's connection pool, for the parts of hpfleet that
// keep their own tables in the same database (the audit log's pgaudit).
// The store closes it.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

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
	r.Rev, r.CreatedAt = 1, store.NormTime(r.CreatedAt)
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO hpfleet.rollouts (id, grp, active, rev, created_at, data) VALUES ($1, $2, $3, 1, $4, $5)`,
			string(r.ID), r.Group, r.Active, r.CreatedAt, r.Data); err != nil {
			return err
		}
		rows := make([][]any, 0, len(devices))
		for _, d := range devices {
			rows = append(rows, []any{string(r.ID), string(d.Device), int64(1), d.Data})
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"hpfleet", "rollout_devices"}, []string{"rollout_id", "device_id", "rev", "data"},
			pgx.CopyFromRows(rows))
		return err
	})
	if err != nil {
		return store.Rollout{}, fmt.Errorf("create rollout %s: %w", r.ID, classify(err))
	}
	return r, nil
}

const rolloutCols = `id, grp, active, rev, created_at, data`

func scanRollout(row pgx.Row) (store.Rollout, error) {
	var r store.Rollout
	var id string
	var rev int64
	if err := row.Scan(&id, &r.Group, &r.Active, &rev, &r.CreatedAt, &r.Data); err != nil {
		return store.Rollout{}, err
	}
	r.ID, r.Rev, r.CreatedAt = store.RolloutID(id), uint64(rev), r.CreatedAt.UTC()
	return r, nil
}

// GetRollout implements store.RolloutStore.
func (s *Store) GetRollout(ctx context.Context, id store.RolloutID) (store.Rollout, error) {
	if err := id.Validate(); err != nil {
		return store.Rollout{}, fmt.Errorf("get rollout: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return store.Rollout{}, err
	}
	r, err := scanRollout(s.pool.QueryRow(ctx, `SELECT `+rolloutCols+` FROM hpfleet.rollouts WHERE id = $1`, string(id)))
	if errors.Is(err, pgx.ErrNoRows) {
		err = store.ErrNotFound
	}
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
	if prev == 0 || prev >= 1<<62 {
		return store.Rollout{}, fmt.Errorf("put rollout: %w: revision %d", store.ErrInvalid, prev)
	}
	var out store.Rollout
	err := s.tx(ctx, func(tx pgx.Tx) error {
		// Active may only go from true to false.
		row := tx.QueryRow(ctx, `UPDATE hpfleet.rollouts SET rev = rev + 1, active = $3, data = $4
			WHERE id = $1 AND rev = $2 AND (active OR NOT $3) RETURNING `+rolloutCols, string(r.ID), int64(prev), r.Active, r.Data)
		var err error
		out, err = scanRollout(row)
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		cur, err := scanRollout(tx.QueryRow(ctx, `SELECT `+rolloutCols+` FROM hpfleet.rollouts WHERE id = $1`, string(r.ID)))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return store.ErrNotFound
		case err != nil:
			return err
		case cur.Rev != prev:
			return fmt.Errorf("%w: revision %d stored, %d expected", store.ErrState, cur.Rev, prev)
		}
		return fmt.Errorf("%w: a rollout that ended does not start again", store.ErrState)
	})
	if err != nil {
		return store.Rollout{}, fmt.Errorf("put rollout %s: %w", r.ID, classify(err))
	}
	return out, nil
}

func collectRollouts(rows pgx.Rows) ([]store.Rollout, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Rollout, error) { return scanRollout(r) })
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
	if err := ctxErr(ctx); err != nil {
		return pg, err
	}
	var rows pgx.Rows
	var err error
	if p.After == "" {
		rows, err = s.pool.Query(ctx, `SELECT `+rolloutCols+` FROM hpfleet.rollouts ORDER BY created_at DESC, id DESC LIMIT $1`, p.Limit+1)
	} else {
		var cur store.Rollout
		cur, err = s.GetRollout(ctx, store.RolloutID(p.After))
		if err != nil {
			return pg, fmt.Errorf("list rollouts: page cursor: %w", err)
		}
		rows, err = s.pool.Query(ctx, `SELECT `+rolloutCols+` FROM hpfleet.rollouts WHERE (created_at, id) < ($1, $2)
			ORDER BY created_at DESC, id DESC LIMIT $3`, cur.CreatedAt, string(cur.ID), p.Limit+1)
	}
	if err != nil {
		return pg, fmt.Errorf("list rollouts: %w", err)
	}
	items, err := collectRollouts(rows)
	if err != nil {
		return pg, fmt.Errorf("list rollouts: %w", err)
	}
	if len(items) > p.Limit {
		items = items[:p.Limit]
		pg.Next = string(items[len(items)-1].ID)
	}
	pg.Items = items
	return pg, nil
}

// ListActiveRollouts implements store.RolloutStore.
func (s *Store) ListActiveRollouts(ctx context.Context) ([]store.Rollout, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+rolloutCols+` FROM hpfleet.rollouts WHERE active ORDER BY grp LIMIT $1`, store.MaxPageSize)
	if err != nil {
		return nil, fmt.Errorf("list active rollouts: %w", err)
	}
	out, err := collectRollouts(rows)
	if err != nil {
		return nil, fmt.Errorf("list active rollouts: %w", err)
	}
	return out, nil
}

// ActiveRolloutOf implements store.RolloutStore.
func (s *Store) ActiveRolloutOf(ctx context.Context, group string) (store.Rollout, error) {
	if err := ctxErr(ctx); err != nil {
		return store.Rollout{}, err
	}
	r, err := scanRollout(s.pool.QueryRow(ctx, `SELECT `+rolloutCols+` FROM hpfleet.rollouts WHERE active AND grp = $1`, group))
	if errors.Is(err, pgx.ErrNoRows) {
		err = store.ErrNotFound
	}
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
	if err := ctxErr(ctx); err != nil {
		return store.RolloutDevice{}, err
	}
	out := store.RolloutDevice{Rollout: id, Device: dev}
	var rev int64
	err := s.pool.QueryRow(ctx, `SELECT rev, data FROM hpfleet.rollout_devices WHERE rollout_id = $1 AND device_id = $2`,
		string(id), string(dev)).Scan(&rev, &out.Data)
	if errors.Is(err, pgx.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.RolloutDevice{}, fmt.Errorf("get rollout %s device %s: %w", id, dev, err)
	}
	out.Rev = uint64(rev)
	return out, nil
}

// PutRolloutDevice implements store.RolloutStore.
func (s *Store) PutRolloutDevice(ctx context.Context, d store.RolloutDevice, prev uint64) (store.RolloutDevice, error) {
	if err := d.Validate(); err != nil {
		return store.RolloutDevice{}, fmt.Errorf("put rollout device: %w", err)
	}
	if prev == 0 || prev >= 1<<62 {
		return store.RolloutDevice{}, fmt.Errorf("put rollout device: %w: revision %d", store.ErrInvalid, prev)
	}
	if err := ctxErr(ctx); err != nil {
		return store.RolloutDevice{}, err
	}
	tag, err := s.pool.Exec(ctx, `UPDATE hpfleet.rollout_devices SET rev = rev + 1, data = $4
		WHERE rollout_id = $1 AND device_id = $2 AND rev = $3`, string(d.Rollout), string(d.Device), int64(prev), d.Data)
	if err == nil && tag.RowsAffected() == 0 {
		var rev int64
		err = s.pool.QueryRow(ctx, `SELECT rev FROM hpfleet.rollout_devices WHERE rollout_id = $1 AND device_id = $2`,
			string(d.Rollout), string(d.Device)).Scan(&rev)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			err = store.ErrNotFound
		case err == nil:
			err = fmt.Errorf("%w: revision %d stored, %d expected", store.ErrState, rev, prev)
		}
	}
	if err != nil {
		return store.RolloutDevice{}, fmt.Errorf("put rollout %s device %s: %w", d.Rollout, d.Device, err)
	}
	d.Rev = prev + 1
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
	if _, err := s.GetRollout(ctx, id); err != nil {
		return pg, fmt.Errorf("list rollout devices: %w", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT device_id, rev, data FROM hpfleet.rollout_devices
		WHERE rollout_id = $1 AND device_id > $2 ORDER BY device_id LIMIT $3`, string(id), string(after), p.Limit+1)
	if err != nil {
		return pg, fmt.Errorf("list rollout %s devices: %w", id, err)
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.RolloutDevice, error) {
		d := store.RolloutDevice{Rollout: id}
		var dev string
		var rev int64
		err := r.Scan(&dev, &rev, &d.Data)
		d.Device, d.Rev = store.DeviceID(dev), uint64(rev)
		return d, err
	})
	if err != nil {
		return pg, fmt.Errorf("list rollout %s devices: %w", id, err)
	}
	if len(items) > p.Limit {
		items = items[:p.Limit]
		pg.Next = string(items[len(items)-1].Device)
	}
	pg.Items = items
	return pg, nil
}

// PutApproverKey implements store.RolloutStore.
func (s *Store) PutApproverKey(ctx context.Context, k store.ApproverKey) error {
	if err := k.Validate(); err != nil {
		return fmt.Errorf("put approver key: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO hpfleet.approver_keys (key_id, admin, public_key, registered_at) VALUES ($1, $2, $3, $4)`,
		k.KeyID, k.Admin, k.PublicKey, store.NormTime(k.RegisteredAt))
	if err != nil {
		return fmt.Errorf("put approver key: %w", classify(err))
	}
	return nil
}

func scanApprover(row pgx.Row) (store.ApproverKey, error) {
	var k store.ApproverKey
	err := row.Scan(&k.KeyID, &k.Admin, &k.PublicKey, &k.RegisteredAt)
	k.RegisteredAt = k.RegisteredAt.UTC()
	return k, err
}

// GetApproverKey implements store.RolloutStore.
func (s *Store) GetApproverKey(ctx context.Context, keyID string) (store.ApproverKey, error) {
	if err := ctxErr(ctx); err != nil {
		return store.ApproverKey{}, err
	}
	k, err := scanApprover(s.pool.QueryRow(ctx, `SELECT key_id, admin, public_key, registered_at FROM hpfleet.approver_keys WHERE key_id = $1`, keyID))
	if errors.Is(err, pgx.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.ApproverKey{}, fmt.Errorf("get approver key %.64q: %w", keyID, err)
	}
	return k, nil
}

// ListApproverKeys implements store.RolloutStore.
func (s *Store) ListApproverKeys(ctx context.Context) ([]store.ApproverKey, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT key_id, admin, public_key, registered_at FROM hpfleet.approver_keys ORDER BY key_id LIMIT $1`, store.MaxPageSize)
	if err != nil {
		return nil, fmt.Errorf("list approver keys: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.ApproverKey, error) { return scanApprover(r) })
	if err != nil {
		return nil, fmt.Errorf("list approver keys: %w", err)
	}
	return out, nil
}

// DeleteApproverKey implements store.RolloutStore.
func (s *Store) DeleteApproverKey(ctx context.Context, keyID string) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM hpfleet.approver_keys WHERE key_id = $1`, keyID)
	if err == nil && tag.RowsAffected() == 0 {
		err = store.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("delete approver key %.64q: %w", keyID, err)
	}
	return nil
}
