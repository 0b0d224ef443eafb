package pgstore

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/hardphone/hardphone/fleet/store"
)

// PutReport implements store.Store: one transaction, three statements
// sent in one round trip. The UPDATE of the device takes its row lock, so
// reports of one device (from any replica) are stored one after the
// other, and the DELETE that follows (a statement of its own, whose
// snapshot sees every report committed before the lock was granted)
// trims the history to exactly MaxReportHistory.
func (s *Store) PutReport(ctx context.Context, id store.DeviceID, r store.Report) error {
	r, err := store.ValidateReport(id, r)
	if err != nil {
		return fmt.Errorf("put report: %w", err)
	}
	body, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("put report for %s: %w", id, err)
	}
	err = s.tx(ctx, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`UPDATE hpfleet.devices SET last_seen = greatest(last_seen, $2) WHERE id = $1`, string(id), r.ReceivedAt)
		b.Queue(`INSERT INTO hpfleet.reports (device_id, received_at, body, signed)
			SELECT id, $2, $3, $4 FROM hpfleet.devices WHERE id = $1`, string(id), r.ReceivedAt, json.RawMessage(body), r.Signed)
		b.Queue(`DELETE FROM hpfleet.reports WHERE device_id = $1 AND seq <= (
			SELECT seq FROM hpfleet.reports WHERE device_id = $1 ORDER BY seq DESC OFFSET $2 LIMIT 1)`,
			string(id), store.MaxReportHistory)
		res := tx.SendBatch(ctx, b)
		tag, err := res.Exec()
		if err != nil {
			res.Close()
			return err
		}
		if tag.RowsAffected() == 0 {
			res.Close()
			return store.ErrNotFound
		}
		return res.Close()
	})
	if err != nil {
		return fmt.Errorf("put report for %s: %w", id, classify(err))
	}
	return nil
}

// LatestReport implements store.Store.
func (s *Store) LatestReport(ctx context.Context, id store.DeviceID) (store.Report, error) {
	if err := id.Validate(); err != nil {
		return store.Report{}, fmt.Errorf("latest report: %w", err)
	}
	reps, err := s.reports(ctx, id, 1)
	if err != nil {
		return store.Report{}, fmt.Errorf("latest report of %s: %w", id, err)
	}
	if len(reps) == 0 {
		return store.Report{}, fmt.Errorf("latest report of %s: %w", id, store.ErrNotFound)
	}
	return reps[0], nil
}

// ReportHistory implements store.Store.
func (s *Store) ReportHistory(ctx context.Context, id store.DeviceID, limit int) ([]store.Report, error) {
	if err := id.Validate(); err != nil {
		return nil, fmt.Errorf("report history: %w", err)
	}
	if err := store.ValidLimit(limit, store.MaxReportHistory); err != nil {
		return nil, fmt.Errorf("report history of %s: %w", id, err)
	}
	reps, err := s.reports(ctx, id, limit)
	if err != nil {
		return nil, fmt.Errorf("report history of %s: %w", id, err)
	}
	if len(reps) == 0 {
		var exists bool
		if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM hpfleet.devices WHERE id = $1)`, string(id)).Scan(&exists); err != nil {
			return nil, fmt.Errorf("report history of %s: %w", id, err)
		}
		if !exists {
			return nil, fmt.Errorf("report history of %s: %w", id, store.ErrNotFound)
		}
	}
	return reps, nil
}

// reports returns up to limit of a device's reports, newest first.
func (s *Store) reports(ctx context.Context, id store.DeviceID, limit int) ([]store.Report, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT body, signed FROM hpfleet.reports WHERE device_id = $1
		ORDER BY seq DESC LIMIT $2`, string(id), limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Report, error) {
		var (
			body []byte
			r    store.Report
		)
		if err := row.Scan(&body, &r.Signed); err != nil {
			return r, err
		}
		if err := json.Unmarshal(body, &r); err != nil {
			return r, fmt.Errorf("decode report: %w", err)
		}
		r.ReceivedAt, r.CertNotAfter = r.ReceivedAt.UTC(), r.CertNotAfter.UTC()
		return r, nil
	})
}
