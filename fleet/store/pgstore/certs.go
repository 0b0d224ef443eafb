package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hardphone/hardphone/fleet/store"
)

const certColumns = `serial, device_id, not_before, not_after, revoked_at, reason, der`

func scanCert(row pgx.Row) (store.Cert, error) {
	var (
		c         store.Cert
		serial    []byte
		id        string
		revokedAt *time.Time
		reason    int16
	)
	if err := row.Scan(&serial, &id, &c.NotBefore, &c.NotAfter, &revokedAt, &reason, &c.DER); err != nil {
		return store.Cert{}, err
	}
	if len(serial) != len(c.Serial) || reason < 0 || reason > 255 {
		return store.Cert{}, fmt.Errorf("certificate %x: stored serial of %d bytes, reason %d", serial, len(serial), reason)
	}
	copy(c.Serial[:], serial)
	c.DeviceID, c.Reason = store.DeviceID(id), store.RevocationReason(reason)
	c.NotBefore, c.NotAfter = c.NotBefore.UTC(), c.NotAfter.UTC()
	if revokedAt != nil {
		t := revokedAt.UTC()
		c.RevokedAt = &t
	}
	if len(c.DER) == 0 {
		c.DER = nil
	}
	return c, nil
}

// insertCert records a new certificate.
func insertCert(ctx context.Context, tx pgx.Tx, c store.Cert) error {
	_, err := tx.Exec(ctx, `INSERT INTO hpfleet.certs (serial, device_id, not_before, not_after, der)
		VALUES ($1, $2, $3, $4, $5)`, c.Serial[:], string(c.DeviceID), c.NotBefore, c.NotAfter, c.DER)
	return err
}

// NextCertSerial implements store.Store: the sequence hands each number
// out once across all sessions, and never takes it back.
func (s *Store) NextCertSerial(ctx context.Context) (store.CertSerial, error) {
	if err := ctxErr(ctx); err != nil {
		return store.CertSerial{}, err
	}
	var seq int64
	if err := s.pool.QueryRow(ctx, `SELECT nextval('hpfleet.cert_serial_seq')`).Scan(&seq); err != nil {
		return store.CertSerial{}, fmt.Errorf("next certificate serial: %w", err)
	}
	serial, err := store.NewCertSerial(uint64(seq))
	if err != nil {
		return store.CertSerial{}, fmt.Errorf("next certificate serial: %w", err)
	}
	return serial, nil
}

// AddCert implements store.Store, under the device's row lock (see
// SetDeviceState).
func (s *Store) AddCert(ctx context.Context, c store.Cert) error {
	c, err := store.ValidateNewCert(c)
	if err != nil {
		return fmt.Errorf("add certificate: %w", err)
	}
	err = s.tx(ctx, func(tx pgx.Tx) error {
		state, err := lockDevice(ctx, tx, c.DeviceID)
		if err != nil {
			return err
		}
		if state != store.StateEnrolled {
			return fmt.Errorf("%w: device %s is %s", store.ErrState, c.DeviceID, state)
		}
		var live int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM hpfleet.certs
			WHERE device_id = $1 AND revoked_at IS NULL AND not_after > $2`, string(c.DeviceID), c.NotBefore).Scan(&live); err != nil {
			return err
		}
		if live >= store.MaxLiveCertsPerDevice {
			return fmt.Errorf("%w: device %s has %d certificates live", store.ErrLimit, c.DeviceID, live)
		}
		if err := insertCert(ctx, tx, c); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE hpfleet.devices SET cert_serial = $2, cert_not_after = $3 WHERE id = $1`,
			string(c.DeviceID), c.Serial[:], c.NotAfter)
		return err
	})
	if err != nil {
		return fmt.Errorf("add certificate %s: %w", c.Serial, classify(err))
	}
	return nil
}

// GetCert implements store.Store.
func (s *Store) GetCert(ctx context.Context, serial store.CertSerial) (store.Cert, error) {
	if err := ctxErr(ctx); err != nil {
		return store.Cert{}, err
	}
	c, err := scanCert(s.pool.QueryRow(ctx, `SELECT `+certColumns+` FROM hpfleet.certs WHERE serial = $1`, serial[:]))
	if errors.Is(err, pgx.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Cert{}, fmt.Errorf("get certificate %s: %w", serial, err)
	}
	return c, nil
}

// ListDeviceCerts implements store.Store.
func (s *Store) ListDeviceCerts(ctx context.Context, id store.DeviceID, limit int) ([]store.Cert, error) {
	if err := id.Validate(); err != nil {
		return nil, fmt.Errorf("list certificates: %w", err)
	}
	if err := store.ValidLimit(limit, store.MaxPageSize); err != nil {
		return nil, fmt.Errorf("list certificates of %s: %w", id, err)
	}
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+certColumns+` FROM hpfleet.certs WHERE device_id = $1
		ORDER BY not_before DESC, serial DESC LIMIT $2`, string(id), limit)
	if err != nil {
		return nil, fmt.Errorf("list certificates of %s: %w", id, err)
	}
	certs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Cert, error) { return scanCert(r) })
	if err != nil {
		return nil, fmt.Errorf("list certificates of %s: %w", id, err)
	}
	if len(certs) == 0 {
		// Every device has a certificate: none means no device.
		return nil, fmt.Errorf("list certificates of %s: %w", id, store.ErrNotFound)
	}
	return certs, nil
}

// RevokeCert implements store.Store: one conditional UPDATE, so of two
// racing revocations one wins and the other finds it revoked.
func (s *Store) RevokeCert(ctx context.Context, serial store.CertSerial, reason store.RevocationReason, at time.Time) error {
	at, err := store.ValidateRevocation(reason, at)
	if err != nil {
		return fmt.Errorf("revoke certificate %s: %w", serial, err)
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	var state string
	err = s.pool.QueryRow(ctx, `WITH rev AS (
			UPDATE hpfleet.certs SET revoked_at = $2, reason = $3 WHERE serial = $1 AND revoked_at IS NULL
			RETURNING 1
		)
		SELECT CASE WHEN EXISTS (SELECT 1 FROM rev) THEN 'revoked'
			WHEN EXISTS (SELECT 1 FROM hpfleet.certs WHERE serial = $1) THEN 'already'
			ELSE 'missing' END`, serial[:], at, int16(reason)).Scan(&state)
	switch {
	case err != nil:
	case state == "already":
		err = fmt.Errorf("%w: already revoked", store.ErrState)
	case state == "missing":
		err = store.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("revoke certificate %s: %w", serial, err)
	}
	return nil
}

// ListRevoked implements store.Store.
func (s *Store) ListRevoked(ctx context.Context, notAfterFrom time.Time, p store.PageRequest) (store.Page[store.Cert], error) {
	var page store.Page[store.Cert]
	if err := p.Validate(); err != nil {
		return page, fmt.Errorf("list revoked: %w", err)
	}
	if err := store.CheckTime("not_after_from", notAfterFrom); err != nil {
		return page, fmt.Errorf("list revoked: %w", err)
	}
	after, _, err := store.ParseCertCursor(p.After)
	if err != nil {
		return page, fmt.Errorf("list revoked: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return page, err
	}
	// The zero serial sorts before every valid one: it stands for the
	// start.
	rows, err := s.pool.Query(ctx, `SELECT `+certColumns+` FROM hpfleet.certs
		WHERE revoked_at IS NOT NULL AND serial > $1 AND not_after >= $2 ORDER BY serial LIMIT $3`,
		after[:], store.NormTime(notAfterFrom), p.Limit+1)
	if err != nil {
		return page, fmt.Errorf("list revoked: %w", err)
	}
	page.Items, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Cert, error) { return scanCert(r) })
	if err != nil {
		return store.Page[store.Cert]{}, fmt.Errorf("list revoked: %w", err)
	}
	if len(page.Items) > p.Limit {
		page.Items = page.Items[:p.Limit]
		page.Next = page.Items[p.Limit-1].Serial.String()
	}
	return page, nil
}

// NextCRLNumber implements store.Store.
func (s *Store) NextCRLNumber(ctx context.Context) (uint64, error) {
	if err := ctxErr(ctx); err != nil {
		return 0, err
	}
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT nextval('hpfleet.crl_number_seq')`).Scan(&n); err != nil {
		return 0, fmt.Errorf("next CRL number: %w", err)
	}
	return uint64(n), nil
}
