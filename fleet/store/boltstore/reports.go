package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/hardphone/hardphone/fleet/store"
)

// PutReport implements store.Store. A device's reports live in a bucket of
// their own, keyed by that bucket's sequence: the newest has the highest
// key, and the ones to drop are a run at the start.
func (s *Store) PutReport(ctx context.Context, id store.DeviceID, r store.Report) error {
	r, err := store.ValidateReport(id, r)
	if err != nil {
		return fmt.Errorf("put report: %w", err)
	}
	v, err := encReport(r)
	if err != nil {
		return fmt.Errorf("put report for %s: %w", id, err)
	}
	err = s.update(ctx, func(tx *bolt.Tx) error {
		d, err := getDevice(tx, id)
		if err != nil {
			return err
		}
		b, err := tx.Bucket(bReports).CreateBucketIfNotExists([]byte(id))
		if err != nil {
			return err
		}
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		if err := b.Put(u64(seq), v); err != nil {
			return err
		}
		if seq > store.MaxReportHistory {
			// Keys are contiguous sequence numbers: everything at or below
			// seq-MaxReportHistory is older than the newest
			// MaxReportHistory.
			oldest := u64(seq - store.MaxReportHistory)
			c := b.Cursor()
			for k, _ := c.First(); k != nil && bytes.Compare(k, oldest) <= 0; k, _ = c.First() {
				if err := c.Delete(); err != nil {
					return err
				}
			}
		}
		if r.ReceivedAt.After(d.LastSeen) {
			d.LastSeen = r.ReceivedAt
			return putDevice(tx, d)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("put report for %s: %w", id, err)
	}
	return nil
}

// LatestReport implements store.Store.
func (s *Store) LatestReport(ctx context.Context, id store.DeviceID) (store.Report, error) {
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
	if err := store.ValidLimit(limit, store.MaxReportHistory); err != nil {
		return nil, fmt.Errorf("report history of %s: %w", id, err)
	}
	reps, err := s.reports(ctx, id, limit)
	if err != nil {
		return nil, fmt.Errorf("report history of %s: %w", id, err)
	}
	return reps, nil
}

// reports returns up to limit of a device's reports, newest first.
func (s *Store) reports(ctx context.Context, id store.DeviceID, limit int) ([]store.Report, error) {
	if err := id.Validate(); err != nil {
		return nil, err
	}
	var reps []store.Report
	err := s.view(ctx, func(tx *bolt.Tx) error {
		if tx.Bucket(bDev).Get([]byte(id)) == nil {
			return store.ErrNotFound
		}
		b := tx.Bucket(bReports).Bucket([]byte(id))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Last(); k != nil && len(reps) < limit; k, v = c.Prev() {
			if len(k) != 8 {
				return fmt.Errorf("report key of %d bytes", len(k))
			}
			r, err := decReport(v)
			if err != nil {
				return fmt.Errorf("report %d: %w", binary.BigEndian.Uint64(k), err)
			}
			reps = append(reps, r)
		}
		return nil
	})
	return reps, err
}
