package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hardphone/hardphone/fleet/store"
)

const deviceColumns = `id, serial, model, grp, ek_hash, identity_public_key, state,
	enrolled_at, state_changed_at, last_seen, cert_serial, cert_not_after, sealing_public_key`

func scanDevice(row pgx.Row) (store.Device, error) {
	var (
		d          store.Device
		id, state  string
		ek, serial []byte
	)
	err := row.Scan(&id, &d.Serial, &d.Model, &d.Group, &ek, &d.IdentityPublicKey, &state,
		&d.EnrolledAt, &d.StateChangedAt, &d.LastSeen, &serial, &d.CertNotAfter, &d.SealingPublicKey)
	if err != nil {
		return store.Device{}, err
	}
	if len(ek) != len(d.EK) || len(serial) != len(d.CurrentCertSerial) {
		return store.Device{}, fmt.Errorf("device %s: stored EK hash of %d bytes, serial of %d", id, len(ek), len(serial))
	}
	d.ID, d.State = store.DeviceID(id), store.DeviceState(state)
	copy(d.EK[:], ek)
	copy(d.CurrentCertSerial[:], serial)
	d.EnrolledAt, d.StateChangedAt, d.LastSeen = d.EnrolledAt.UTC(), d.StateChangedAt.UTC(), d.LastSeen.UTC()
	d.CertNotAfter = d.CertNotAfter.UTC()
	return d, nil
}

// CreateDevice implements store.Store. The allow-list row is held FOR KEY
// SHARE, so a RemoveAllowed racing with the enrolment waits for it; the
// partial unique indexes refuse a second live device per TPM or serial,
// also when two replicas insert at once (the second waits for the first
// to commit, then fails); the device and its certificate commit together.
func (s *Store) CreateDevice(ctx context.Context, d store.Device, first store.Cert) error {
	d, first, err := store.ValidateNewDevice(d, first)
	if err != nil {
		return fmt.Errorf("create device: %w", err)
	}
	err = s.tx(ctx, func(tx pgx.Tx) error {
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM hpfleet.allowlist WHERE ek_hash = $1 FOR KEY SHARE`, d.EK[:]).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: EK %s", store.ErrNotAllowed, d.EK)
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO hpfleet.devices (`+deviceColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
			string(d.ID), d.Serial, d.Model, d.Group, d.EK[:], d.IdentityPublicKey, string(d.State),
			d.EnrolledAt, d.StateChangedAt, d.LastSeen, d.CurrentCertSerial[:], d.CertNotAfter, d.SealingPublicKey)
		if err != nil {
			return err
		}
		return insertCert(ctx, tx, first)
	})
	if err != nil {
		return fmt.Errorf("create device %s: %w", d.ID, classify(err))
	}
	return nil
}

// GetDevice implements store.Store.
func (s *Store) GetDevice(ctx context.Context, id store.DeviceID) (store.Device, error) {
	if err := id.Validate(); err != nil {
		return store.Device{}, fmt.Errorf("get device: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return store.Device{}, err
	}
	d, err := scanDevice(s.pool.QueryRow(ctx, `SELECT `+deviceColumns+` FROM hpfleet.devices WHERE id = $1`, string(id)))
	if errors.Is(err, pgx.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Device{}, fmt.Errorf("get device %s: %w", id, err)
	}
	return d, nil
}

// GetDeviceByEK implements store.Store.
func (s *Store) GetDeviceByEK(ctx context.Context, ek store.EKHash) (store.Device, error) {
	if err := ctxErr(ctx); err != nil {
		return store.Device{}, err
	}
	d, err := scanDevice(s.pool.QueryRow(ctx, `SELECT `+deviceColumns+` FROM hpfleet.devices
		WHERE ek_hash = $1 AND state <> 'retired'`, ek[:]))
	if errors.Is(err, pgx.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Device{}, fmt.Errorf("get device by EK %s: %w", ek, err)
	}
	return d, nil
}

// ListDevices implements store.Store.
func (s *Store) ListDevices(ctx context.Context, p store.PageRequest) (store.Page[store.Device], error) {
	var page store.Page[store.Device]
	if err := p.Validate(); err != nil {
		return page, fmt.Errorf("list devices: %w", err)
	}
	after, err := store.ParseDeviceCursor(p.After)
	if err != nil {
		return page, fmt.Errorf("list devices: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return page, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+deviceColumns+` FROM hpfleet.devices
		WHERE id > $1 ORDER BY id LIMIT $2`, string(after), p.Limit+1)
	if err != nil {
		return page, fmt.Errorf("list devices: %w", err)
	}
	page.Items, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Device, error) { return scanDevice(r) })
	if err != nil {
		return store.Page[store.Device]{}, fmt.Errorf("list devices: %w", err)
	}
	if len(page.Items) > p.Limit {
		page.Items = page.Items[:p.Limit]
		page.Next = string(page.Items[p.Limit-1].ID)
	}
	return page, nil
}

// SetDeviceState implements store.Store. The device row is locked first:
// an AddCert on another replica either committed before (its certificate
// is revoked by the UPDATE below, a statement that starts after the lock
// was granted and so sees it) or waits and then finds the device not
// enrolled.
func (s *Store) SetDeviceState(ctx context.Context, id store.DeviceID, to store.DeviceState, reason store.RevocationReason, at time.Time) error {
	if err := id.Validate(); err != nil {
		return fmt.Errorf("set device state: %w", err)
	}
	if err := to.Validate(); err != nil {
		return fmt.Errorf("set device %s state: %w", id, err)
	}
	at, err := store.ValidateRevocation(reason, at)
	if err != nil {
		return fmt.Errorf("set device %s state: %w", id, err)
	}
	err = s.tx(ctx, func(tx pgx.Tx) error {
		from, err := lockDevice(ctx, tx, id)
		if err != nil {
			return err
		}
		if from == to {
			return nil
		}
		if !from.CanMove(to) {
			return fmt.Errorf("%w: device is %s, cannot become %s", store.ErrState, from, to)
		}
		if _, err := tx.Exec(ctx, `UPDATE hpfleet.certs SET revoked_at = $2, reason = $3
			WHERE device_id = $1 AND revoked_at IS NULL`, string(id), at, int16(reason)); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE hpfleet.devices SET state = $2, state_changed_at = $3 WHERE id = $1`,
			string(id), string(to), at)
		return err
	})
	if err != nil {
		return fmt.Errorf("set device %s state %s: %w", id, to, classify(err))
	}
	return nil
}

// lockDevice takes the device's row lock for the transaction and returns
// its state.
func lockDevice(ctx context.Context, tx pgx.Tx, id store.DeviceID) (store.DeviceState, error) {
	var state string
	err := tx.QueryRow(ctx, `SELECT state FROM hpfleet.devices WHERE id = $1 FOR UPDATE`, string(id)).Scan(&state)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("device %s: %w", id, store.ErrNotFound)
	}
	return store.DeviceState(state), err
}
