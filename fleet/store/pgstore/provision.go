package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

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
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var state string
		err := tx.QueryRow(ctx, `SELECT state FROM hpfleet.devices WHERE id = $1 FOR UPDATE`, string(id)).Scan(&state)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if store.DeviceState(state) != store.StateEnrolled {
			return fmt.Errorf("%w: device is %s", store.ErrState, state)
		}
		_, err = tx.Exec(ctx, `UPDATE hpfleet.devices SET sealing_public_key = $2 WHERE id = $1`, string(id), spki)
		return err
	})
	if err != nil {
		return fmt.Errorf("set sealing key of %s: %w", id, classify(err))
	}
	return nil
}

// firmwareJSON is the firmware column's form.
type firmwareJSON struct {
	Name            string `json:"name"`
	Length          int64  `json:"length"`
	SHA256          []byte `json:"sha256"`
	Compatible      string `json:"compatible"`
	Version         string `json:"version"`
	SecurityVersion uint64 `json:"security_version"`
}

func firmwareColumn(f *store.FirmwareTarget) ([]byte, error) {
	if f == nil {
		return nil, nil
	}
	return json.Marshal(firmwareJSON{f.Name, f.Length, f.SHA256[:], f.Compatible, f.Version, f.SecurityVersion})
}

func parseFirmwareColumn(b []byte) (*store.FirmwareTarget, error) {
	if b == nil {
		return nil, nil
	}
	var j firmwareJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("firmware column: %w", err)
	}
	if len(j.SHA256) != 32 {
		return nil, fmt.Errorf("firmware column: SHA-256 of %d bytes", len(j.SHA256))
	}
	f := &store.FirmwareTarget{Name: j.Name, Length: j.Length, Compatible: j.Compatible, Version: j.Version, SecurityVersion: j.SecurityVersion}
	copy(f.SHA256[:], j.SHA256)
	return f, nil
}

// GetAssignment implements store.Store.
func (s *Store) GetAssignment(ctx context.Context, sc store.Scope) (store.Assignment, error) {
	if err := sc.Validate(); err != nil {
		return store.Assignment{}, fmt.Errorf("get assignment: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return store.Assignment{}, err
	}
	a := store.Assignment{Scope: sc}
	var rev int64
	var fw []byte
	err := s.pool.QueryRow(ctx, `SELECT revision, config, firmware, updated_at, updated_by
		FROM hpfleet.assignments WHERE kind = $1 AND name = $2`, string(sc.Kind), sc.Name).
		Scan(&rev, &a.Config, &fw, &a.UpdatedAt, &a.UpdatedBy)
	if errors.Is(err, pgx.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Assignment{}, fmt.Errorf("get assignment %s: %w", sc, err)
	}
	if a.Firmware, err = parseFirmwareColumn(fw); err != nil {
		return store.Assignment{}, fmt.Errorf("get assignment %s: %w", sc, err)
	}
	a.Revision, a.UpdatedAt = uint64(rev), a.UpdatedAt.UTC()
	return a, nil
}

// PutAssignment implements store.Store: an UPDATE guarded by the revision,
// or an INSERT that the primary key refuses when another replica inserted
// first.
func (s *Store) PutAssignment(ctx context.Context, a store.Assignment, prev uint64) (store.Assignment, error) {
	if err := a.Validate(); err != nil {
		return store.Assignment{}, fmt.Errorf("put assignment: %w", err)
	}
	if prev >= 1<<62 {
		return store.Assignment{}, fmt.Errorf("put assignment: %w: revision %d", store.ErrInvalid, prev)
	}
	a.UpdatedAt = store.NormTime(a.UpdatedAt)
	fw, err := firmwareColumn(a.Firmware)
	if err != nil {
		return store.Assignment{}, fmt.Errorf("put assignment: %w", err)
	}
	err = s.tx(ctx, func(tx pgx.Tx) error {
		if a.Scope.Kind == store.ScopeDevice {
			var one int
			err := tx.QueryRow(ctx, `SELECT 1 FROM hpfleet.devices WHERE id = $1 FOR KEY SHARE`, a.Scope.Name).Scan(&one)
			if errors.Is(err, pgx.ErrNoRows) {
				return store.ErrNotFound
			}
			if err != nil {
				return err
			}
		}
		if prev == 0 {
			_, err := tx.Exec(ctx, `INSERT INTO hpfleet.assignments (kind, name, revision, config, firmware, updated_at, updated_by)
				VALUES ($1, $2, 1, $3, $4, $5, $6)`, string(a.Scope.Kind), a.Scope.Name, a.Config, fw, a.UpdatedAt, a.UpdatedBy)
			if code, _ := pgCode(err); code == codeUniqueViolation {
				return fmt.Errorf("%w: an assignment exists, none expected", store.ErrState)
			}
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE hpfleet.assignments SET revision = revision + 1, config = $4, firmware = $5,
			updated_at = $6, updated_by = $7 WHERE kind = $1 AND name = $2 AND revision = $3`,
			string(a.Scope.Kind), a.Scope.Name, int64(prev), a.Config, fw, a.UpdatedAt, a.UpdatedBy)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("%w: revision %d is not the stored one", store.ErrState, prev)
		}
		return nil
	})
	if err != nil {
		return store.Assignment{}, fmt.Errorf("put assignment %s: %w", a.Scope, classify(err))
	}
	a.Revision = prev + 1
	return a, nil
}

// DeleteAssignment implements store.Store.
func (s *Store) DeleteAssignment(ctx context.Context, sc store.Scope) error {
	if err := sc.Validate(); err != nil {
		return fmt.Errorf("delete assignment: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM hpfleet.assignments WHERE kind = $1 AND name = $2`, string(sc.Kind), sc.Name)
	if err == nil && tag.RowsAffected() == 0 {
		err = store.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("delete assignment %s: %w", sc, err)
	}
	return nil
}

// GetProvision implements store.Store.
func (s *Store) GetProvision(ctx context.Context, id store.DeviceID) (store.Provision, error) {
	if err := id.Validate(); err != nil {
		return store.Provision{}, fmt.Errorf("get provision: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return store.Provision{}, err
	}
	p := store.Provision{DeviceID: id}
	var rev int64
	err := s.pool.QueryRow(ctx, `SELECT rev, due_at, data FROM hpfleet.provision WHERE device_id = $1`, string(id)).
		Scan(&rev, &p.DueAt, &p.Data)
	if errors.Is(err, pgx.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Provision{}, fmt.Errorf("get provision %s: %w", id, err)
	}
	p.Rev, p.DueAt = uint64(rev), p.DueAt.UTC()
	return p, nil
}

// PutProvision implements store.Store, as PutAssignment does.
func (s *Store) PutProvision(ctx context.Context, p store.Provision, prev uint64) (store.Provision, error) {
	if err := p.Validate(); err != nil {
		return store.Provision{}, fmt.Errorf("put provision: %w", err)
	}
	if prev >= 1<<62 {
		return store.Provision{}, fmt.Errorf("put provision: %w: revision %d", store.ErrInvalid, prev)
	}
	p.DueAt = store.NormTime(p.DueAt)
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if prev == 0 {
			_, err := tx.Exec(ctx, `INSERT INTO hpfleet.provision (device_id, rev, due_at, data) VALUES ($1, 1, $2, $3)`,
				string(p.DeviceID), p.DueAt, p.Data)
			if code, _ := pgCode(err); code == codeUniqueViolation {
				return fmt.Errorf("%w: a provision exists, none expected", store.ErrState)
			}
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE hpfleet.provision SET rev = rev + 1, due_at = $3, data = $4
			WHERE device_id = $1 AND rev = $2`, string(p.DeviceID), int64(prev), p.DueAt, p.Data)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			var one int
			err := tx.QueryRow(ctx, `SELECT 1 FROM hpfleet.devices WHERE id = $1`, string(p.DeviceID)).Scan(&one)
			if errors.Is(err, pgx.ErrNoRows) {
				return store.ErrNotFound
			}
			return fmt.Errorf("%w: revision %d is not the stored one", store.ErrState, prev)
		}
		return nil
	})
	if err != nil {
		return store.Provision{}, fmt.Errorf("put provision %s: %w", p.DeviceID, classify(err))
	}
	p.Rev = prev + 1
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
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT device_id FROM hpfleet.provision WHERE due_at <= $1
		ORDER BY due_at, device_id LIMIT $2`, store.NormTime(before), limit)
	if err != nil {
		return nil, fmt.Errorf("list provision due: %w", err)
	}
	ids, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.DeviceID, error) {
		var id string
		err := r.Scan(&id)
		return store.DeviceID(id), err
	})
	if err != nil {
		return nil, fmt.Errorf("list provision due: %w", err)
	}
	return ids, nil
}
