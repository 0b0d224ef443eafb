package pgstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hardphone/hardphone/fleet/store"
)

// ImportAllowList implements store.Store. The entries are written in EK
// order, after locking the existing ones in that order, so two imports
// racing on overlapping manifests do not deadlock (and are retried if they
// still do).
func (s *Store) ImportAllowList(ctx context.Context, entries []store.AllowEntry) (store.ImportResult, error) {
	if err := store.ValidateImport(entries); err != nil {
		return store.ImportResult{}, fmt.Errorf("import allow-list: %w", err)
	}
	sorted := slices.Clone(entries)
	slices.SortFunc(sorted, func(a, b store.AllowEntry) int { return bytes.Compare(a.EK[:], b.EK[:]) })
	eks := make([][]byte, len(sorted))
	for i := range sorted {
		eks[i] = sorted[i].EK[:]
		sorted[i].ImportedAt = store.NormTime(sorted[i].ImportedAt)
	}
	var res store.ImportResult
	err := s.tx(ctx, func(tx pgx.Tx) error {
		res = store.ImportResult{}
		rows, err := tx.Query(ctx, `SELECT ek_hash, serial, model, grp FROM hpfleet.allowlist
			WHERE ek_hash = ANY($1) ORDER BY ek_hash FOR UPDATE`, eks)
		if err != nil {
			return err
		}
		old := map[store.EKHash]store.AllowEntry{}
		for rows.Next() {
			var e store.AllowEntry
			var ek []byte
			if err := rows.Scan(&ek, &e.Serial, &e.Model, &e.Group); err != nil {
				rows.Close()
				return err
			}
			copy(e.EK[:], ek)
			old[e.EK] = e
		}
		if err := rows.Err(); err != nil {
			return err
		}
		var (
			wEK                   [][]byte
			wSerial, wModel, wGrp []string
			wAt                   []time.Time
		)
		for _, e := range sorted {
			o, ok := old[e.EK]
			switch {
			case ok && o.SameContent(e):
				res.Unchanged++
				continue
			case ok:
				res.Updated++
			default:
				res.Added++
			}
			wEK, wSerial, wModel, wGrp, wAt = append(wEK, e.EK[:]), append(wSerial, e.Serial),
				append(wModel, e.Model), append(wGrp, e.Group), append(wAt, e.ImportedAt)
		}
		if len(wEK) == 0 {
			return nil
		}
		// A serial held by another EK violates allowlist_serial_key.
		_, err = tx.Exec(ctx, `INSERT INTO hpfleet.allowlist (ek_hash, serial, model, grp, imported_at)
			SELECT * FROM unnest($1::bytea[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
			ON CONFLICT (ek_hash) DO UPDATE SET serial = excluded.serial, model = excluded.model,
				grp = excluded.grp, imported_at = excluded.imported_at`,
			wEK, wSerial, wModel, wGrp, wAt)
		return err
	})
	if err != nil {
		return store.ImportResult{}, fmt.Errorf("import allow-list: %w", classify(err))
	}
	return res, nil
}

// LookupAllowed implements store.Store.
func (s *Store) LookupAllowed(ctx context.Context, ek store.EKHash) (store.AllowEntry, error) {
	if err := ctxErr(ctx); err != nil {
		return store.AllowEntry{}, err
	}
	e := store.AllowEntry{EK: ek}
	err := s.pool.QueryRow(ctx, `SELECT serial, model, grp, imported_at FROM hpfleet.allowlist WHERE ek_hash = $1`,
		ek[:]).Scan(&e.Serial, &e.Model, &e.Group, &e.ImportedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.AllowEntry{}, fmt.Errorf("look up allow-list entry %s: %w", ek, err)
	}
	e.ImportedAt = e.ImportedAt.UTC()
	return e, nil
}

// ListAllowed implements store.Store.
func (s *Store) ListAllowed(ctx context.Context, p store.PageRequest) (store.Page[store.AllowEntry], error) {
	var page store.Page[store.AllowEntry]
	if err := p.Validate(); err != nil {
		return page, fmt.Errorf("list allow-list: %w", err)
	}
	after, _, err := store.ParseEKCursor(p.After)
	if err != nil {
		return page, fmt.Errorf("list allow-list: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return page, err
	}
	// The zero hash sorts before every valid one: it stands for the start.
	rows, err := s.pool.Query(ctx, `SELECT ek_hash, serial, model, grp, imported_at FROM hpfleet.allowlist
		WHERE ek_hash > $1 ORDER BY ek_hash LIMIT $2`, after[:], p.Limit+1)
	if err != nil {
		return page, fmt.Errorf("list allow-list: %w", err)
	}
	page.Items, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.AllowEntry, error) {
		var e store.AllowEntry
		var ek []byte
		if err := r.Scan(&ek, &e.Serial, &e.Model, &e.Group, &e.ImportedAt); err != nil {
			return e, err
		}
		copy(e.EK[:], ek)
		e.ImportedAt = e.ImportedAt.UTC()
		return e, nil
	})
	if err != nil {
		return store.Page[store.AllowEntry]{}, fmt.Errorf("list allow-list: %w", err)
	}
	if len(page.Items) > p.Limit {
		page.Items = page.Items[:p.Limit]
		page.Next = page.Items[p.Limit-1].EK.String()
	}
	return page, nil
}

// RemoveAllowed implements store.Store. Its challenges go with it (ON
// DELETE CASCADE).
func (s *Store) RemoveAllowed(ctx context.Context, ek store.EKHash) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM hpfleet.allowlist WHERE ek_hash = $1`, ek[:])
	if err == nil && tag.RowsAffected() == 0 {
		err = store.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("remove allow-list entry %s: %w", ek, err)
	}
	return nil
}
