package pgstore

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hardphone/hardphone/fleet/store"
)

// obsLock is the key of the transaction advisory lock every append to the
// observation log takes just before it inserts ("hpobs" in ASCII). Held to
// commit, it makes the log's seqs commit in their order, so a reader that
// has seen seq n never later finds a smaller seq appear (the detector
// tails the log from a cursor).
const obsLock int64 = 0x68706f6273

// EventStream implements store.Store.
func (s *Store) EventStream(ctx context.Context, id store.DeviceID) (store.EventStream, error) {
	if err := id.Validate(); err != nil {
		return store.EventStream{}, fmt.Errorf("event stream: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return store.EventStream{}, err
	}
	var data []byte
	err := s.pool.QueryRow(ctx, `SELECT data FROM hpfleet.event_streams WHERE device_id = $1`, string(id)).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.EventStream{}, fmt.Errorf("event stream of %s: %w", id, err)
	}
	return store.UnmarshalEventStream(id, data)
}

// AppendEvents implements store.Store. The stream row (locked FOR UPDATE,
// or inserted under the primary key) serialises the appends of one device
// across replicas; the revision check makes a replica that read an older
// stream start again.
func (s *Store) AppendEvents(ctx context.Context, id store.DeviceID, a store.EventAppend, prev uint64) (store.EventStream, error) {
	a, err := store.ValidateEventAppend(id, a)
	if err != nil {
		return store.EventStream{}, fmt.Errorf("append events: %w", err)
	}
	if prev >= 1<<62 {
		return store.EventStream{}, fmt.Errorf("append events: %w: revision %d", store.ErrInvalid, prev)
	}
	var out store.EventStream
	err = s.tx(ctx, func(tx pgx.Tx) error {
		var cur store.EventStream
		var data []byte
		err := tx.QueryRow(ctx, `SELECT data FROM hpfleet.event_streams WHERE device_id = $1 FOR UPDATE`, string(id)).Scan(&data)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			var one int
			if err := tx.QueryRow(ctx, `SELECT 1 FROM hpfleet.devices WHERE id = $1`, string(id)).Scan(&one); errors.Is(err, pgx.ErrNoRows) {
				return store.ErrNotFound
			} else if err != nil {
				return err
			}
		case err != nil:
			return err
		default:
			if cur, err = store.UnmarshalEventStream(id, data); err != nil {
				return err
			}
		}
		if cur.Rev != prev {
			return fmt.Errorf("%w: stream revision %d stored, %d expected", store.ErrState, cur.Rev, prev)
		}
		st := a.Stream
		st.Rev, st.NextPos, st.FirstPos, st.Records, st.Bytes, st.Truncated =
			prev+1, max(cur.NextPos, 1), cur.FirstPos, cur.Records, cur.Bytes, cur.Truncated
		if st.FirstPos == 0 {
			st.FirstPos = st.NextPos
		}
		if len(a.Records) > 0 {
			rows := make([][]any, len(a.Records))
			for i, r := range a.Records {
				rows[i] = []any{string(id), int64(st.NextPos), r.Chain[:], int64(r.Seq), int16(r.Type), r.Time, r.Kind, int16(r.Severity), r.Raw}
				st.NextPos++
				st.Records++
				st.Bytes += int64(len(r.Raw))
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"hpfleet", "event_records"},
				[]string{"device_id", "pos", "chain", "seq", "type", "time", "kind", "severity", "raw"}, pgx.CopyFromRows(rows)); err != nil {
				return err
			}
		}
		if over := st.Records - store.MaxEventsPerDevice; over > 0 {
			// Positions are contiguous from FirstPos.
			cut := st.FirstPos + uint64(over)
			var n, bytes int64
			if err := tx.QueryRow(ctx, `WITH d AS (DELETE FROM hpfleet.event_records WHERE device_id = $1 AND pos < $2 RETURNING raw)
				SELECT count(*), coalesce(sum(octet_length(raw)), 0) FROM d`, string(id), int64(cut)).Scan(&n, &bytes); err != nil {
				return err
			}
			st.Records -= int(n)
			st.Bytes -= bytes
			st.Truncated += uint64(n)
			st.FirstPos = cut
		}
		v, err := store.MarshalEventStream(st)
		if err != nil {
			return err
		}
		if data == nil {
			_, err = tx.Exec(ctx, `INSERT INTO hpfleet.event_streams (device_id, rev, data) VALUES ($1, $2, $3)`, string(id), int64(st.Rev), v)
		} else {
			_, err = tx.Exec(ctx, `UPDATE hpfleet.event_streams SET rev = $2, data = $3 WHERE device_id = $1`, string(id), int64(st.Rev), v)
		}
		if err != nil {
			return err
		}
		if _, err := appendObs(ctx, tx, a.Observations); err != nil {
			return err
		}
		out = st
		return nil
	})
	if err != nil {
		err = classify(err)
		if errors.Is(err, store.ErrExists) {
			// Another replica inserted the first stream row meanwhile.
			err = fmt.Errorf("%w: %w", store.ErrState, err)
		}
		return store.EventStream{}, fmt.Errorf("append events of %s: %w", id, err)
	}
	return out, nil
}

// ListEvents implements store.Store.
func (s *Store) ListEvents(ctx context.Context, id store.DeviceID, after uint64, limit int) ([]store.EventRecord, error) {
	if err := id.Validate(); err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	if err := store.ValidLimit(limit, store.MaxPageSize); err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT pos, chain, seq, type, time, kind, severity, raw FROM hpfleet.event_records
		WHERE device_id = $1 AND pos > $2 ORDER BY pos LIMIT $3`, string(id), int64(min(after, 1<<62)), limit)
	if err != nil {
		return nil, fmt.Errorf("list events of %s: %w", id, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.EventRecord, error) {
		var e store.EventRecord
		var pos, seq int64
		var typ, sev int16
		var chain []byte
		if err := r.Scan(&pos, &chain, &seq, &typ, &e.Time, &e.Kind, &sev, &e.Raw); err != nil {
			return e, err
		}
		if len(chain) != 16 {
			return e, fmt.Errorf("chain of %d bytes", len(chain))
		}
		copy(e.Chain[:], chain)
		e.Pos, e.Seq, e.Type, e.Severity, e.Time = uint64(pos), uint64(seq), uint8(typ), uint8(sev), e.Time.UTC()
		return e, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list events of %s: %w", id, err)
	}
	return out, nil
}

// appendObs logs observations under obsLock and drops the oldest beyond
// the bound (only prefixes are ever deleted, so the log's length is its
// last seq minus its first plus one).
func appendObs(ctx context.Context, tx pgx.Tx, obs []store.AnomalyObservation) (uint64, error) {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, obsLock); err != nil {
		return 0, err
	}
	var last int64
	if len(obs) == 0 {
		err := tx.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM hpfleet.anomaly_observations`).Scan(&last)
		return uint64(last), err
	}
	rows := make([][]any, len(obs))
	for i, o := range obs {
		rows[i] = []any{string(o.Device), o.At, o.Data}
	}
	// COPY takes each seq from the identity's sequence in this session,
	// in row order: currval is the last row's.
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"hpfleet", "anomaly_observations"}, []string{"device_id", "at", "data"},
		pgx.CopyFromRows(rows)); err != nil {
		return 0, err
	}
	if err := tx.QueryRow(ctx, `SELECT currval(pg_get_serial_sequence('hpfleet.anomaly_observations', 'seq'))`).Scan(&last); err != nil {
		return 0, err
	}
	_, err := tx.Exec(ctx, `DELETE FROM hpfleet.anomaly_observations WHERE seq <= $1`, last-store.MaxObservations)
	return uint64(last), err
}

// AppendObservations implements store.Store.
func (s *Store) AppendObservations(ctx context.Context, obs []store.AnomalyObservation) (uint64, error) {
	obs, err := store.ValidateObservations(obs)
	if err != nil {
		return 0, fmt.Errorf("append observations: %w", err)
	}
	var last uint64
	err = s.tx(ctx, func(tx pgx.Tx) error {
		for _, o := range obs {
			var one int
			if err := tx.QueryRow(ctx, `SELECT 1 FROM hpfleet.devices WHERE id = $1`, string(o.Device)).Scan(&one); errors.Is(err, pgx.ErrNoRows) {
				return store.ErrNotFound
			} else if err != nil {
				return err
			}
		}
		var err error
		last, err = appendObs(ctx, tx, obs)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("append observations: %w", classify(err))
	}
	return last, nil
}

// ListObservations implements store.Store.
func (s *Store) ListObservations(ctx context.Context, after uint64, limit int) ([]store.AnomalyObservation, error) {
	if err := store.ValidLimit(limit, store.MaxPageSize); err != nil {
		return nil, fmt.Errorf("list observations: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT seq, device_id, at, data FROM hpfleet.anomaly_observations
		WHERE seq > $1 ORDER BY seq LIMIT $2`, int64(min(after, 1<<62)), limit)
	if err != nil {
		return nil, fmt.Errorf("list observations: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.AnomalyObservation, error) {
		var o store.AnomalyObservation
		var seq int64
		var dev string
		err := r.Scan(&seq, &dev, &o.At, &o.Data)
		o.Seq, o.Device, o.At = uint64(seq), store.DeviceID(dev), o.At.UTC()
		return o, err
	})
	if err != nil {
		return nil, fmt.Errorf("list observations: %w", err)
	}
	return out, nil
}

// DeleteObservations implements store.Store.
func (s *Store) DeleteObservations(ctx context.Context, through uint64) (int, error) {
	if err := ctxErr(ctx); err != nil {
		return 0, err
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM hpfleet.anomaly_observations WHERE seq <= $1`, int64(min(through, 1<<62)))
	if err != nil {
		return 0, fmt.Errorf("delete observations: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// PutAnomalyFinding implements store.Store.
func (s *Store) PutAnomalyFinding(ctx context.Context, f store.AnomalyFinding) error {
	if err := f.Validate(); err != nil {
		return fmt.Errorf("put finding: %w", err)
	}
	devs := make([]string, len(f.Devices))
	for i, d := range f.Devices {
		devs[i] = string(d)
	}
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO hpfleet.anomaly_findings (id, time, rule, severity, devices, data)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (id) DO UPDATE SET time = $2, rule = $3, severity = $4, devices = $5, data = $6`,
			int64(f.ID), store.NormTime(f.Time), f.Rule, int16(f.Severity), devs, f.Data); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM hpfleet.anomaly_findings WHERE id <= (
			SELECT id FROM hpfleet.anomaly_findings ORDER BY id DESC OFFSET $1 LIMIT 1)`, store.MaxAnomalyFindings)
		return err
	})
	if err != nil {
		return fmt.Errorf("put finding %d: %w", f.ID, classify(err))
	}
	return nil
}

// ListAnomalyFindings implements store.Store.
func (s *Store) ListAnomalyFindings(ctx context.Context, q store.FindingQuery) (store.Page[store.AnomalyFinding], error) {
	if err := q.Validate(); err != nil {
		return store.Page[store.AnomalyFinding]{}, fmt.Errorf("list findings: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return store.Page[store.AnomalyFinding]{}, err
	}
	before := int64(1 << 62)
	if q.Before != 0 {
		before = int64(min(q.Before, 1<<62))
	}
	rows, err := s.pool.Query(ctx, `SELECT id, time, rule, severity, devices, data FROM hpfleet.anomaly_findings
		WHERE id < $1 AND ($2 = '' OR $2 = ANY(devices)) AND ($3 = '' OR rule = $3)
		ORDER BY id DESC LIMIT $4`, before, string(q.Device), q.Rule, q.Limit+1)
	if err != nil {
		return store.Page[store.AnomalyFinding]{}, fmt.Errorf("list findings: %w", err)
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.AnomalyFinding, error) {
		var f store.AnomalyFinding
		var id int64
		var sev int16
		var devs []string
		if err := r.Scan(&id, &f.Time, &f.Rule, &sev, &devs, &f.Data); err != nil {
			return f, err
		}
		f.ID, f.Severity, f.Time = uint64(id), uint8(sev), f.Time.UTC()
		for _, d := range devs {
			f.Devices = append(f.Devices, store.DeviceID(d))
		}
		return f, nil
	})
	if err != nil {
		return store.Page[store.AnomalyFinding]{}, fmt.Errorf("list findings: %w", err)
	}
	var page store.Page[store.AnomalyFinding]
	if len(items) > q.Limit {
		items = items[:q.Limit]
		page.Next = strconv.FormatUint(items[len(items)-1].ID, 10)
	}
	page.Items = items
	return page, nil
}

// AnomalyState implements store.Store.
func (s *Store) AnomalyState(ctx context.Context) (store.AnomalyState, error) {
	if err := ctxErr(ctx); err != nil {
		return store.AnomalyState{}, err
	}
	var st store.AnomalyState
	var rev, cursor int64
	err := s.pool.QueryRow(ctx, `SELECT rev, cursor, saved_at, data FROM hpfleet.anomaly_state WHERE id = 1`).Scan(&rev, &cursor, &st.SavedAt, &st.Data)
	if errors.Is(err, pgx.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.AnomalyState{}, fmt.Errorf("anomaly state: %w", err)
	}
	st.Rev, st.Cursor, st.SavedAt = uint64(rev), uint64(cursor), st.SavedAt.UTC()
	return st, nil
}

// PutAnomalyState implements store.Store.
func (s *Store) PutAnomalyState(ctx context.Context, st store.AnomalyState, prev uint64) (store.AnomalyState, error) {
	if err := st.Validate(); err != nil {
		return store.AnomalyState{}, fmt.Errorf("put anomaly state: %w", err)
	}
	if prev >= 1<<62 {
		return store.AnomalyState{}, fmt.Errorf("put anomaly state: %w: revision %d", store.ErrInvalid, prev)
	}
	st.SavedAt, st.Rev = store.NormTime(st.SavedAt), prev+1
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var tag interface{ RowsAffected() int64 }
		var err error
		if prev == 0 {
			tag, err = tx.Exec(ctx, `INSERT INTO hpfleet.anomaly_state (id, rev, cursor, saved_at, data) VALUES (1, 1, $1, $2, $3)
				ON CONFLICT (id) DO NOTHING`, int64(st.Cursor), st.SavedAt, st.Data)
		} else {
			tag, err = tx.Exec(ctx, `UPDATE hpfleet.anomaly_state SET rev = $1, cursor = $2, saved_at = $3, data = $4
				WHERE id = 1 AND rev = $5`, int64(st.Rev), int64(st.Cursor), st.SavedAt, st.Data, int64(prev))
		}
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("%w: revision %d expected, another is stored", store.ErrState, prev)
		}
		return nil
	})
	if err != nil {
		return store.AnomalyState{}, fmt.Errorf("put anomaly state: %w", classify(err))
	}
	return st, nil
}

// PutAnomalyResponse implements store.Store.
func (s *Store) PutAnomalyResponse(ctx context.Context, r store.AnomalyResponse) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("put response: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO hpfleet.anomaly_responses (device_id, kind, finding, rule, until, data, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (device_id, kind) DO UPDATE SET finding = $3, rule = $4, until = $5, data = $6, updated_at = $7`,
		string(r.Device), string(r.Kind), int64(min(r.Finding, 1<<62)), r.Rule, store.NormTime(r.Until), r.Data, store.NormTime(r.UpdatedAt))
	if err != nil {
		return fmt.Errorf("put %s response of %s: %w", r.Kind, r.Device, classify(err))
	}
	return nil
}

func scanResponse(r pgx.CollectableRow) (store.AnomalyResponse, error) {
	var out store.AnomalyResponse
	var dev, kind string
	var finding int64
	err := r.Scan(&dev, &kind, &finding, &out.Rule, &out.Until, &out.Data, &out.UpdatedAt)
	out.Device, out.Kind, out.Finding = store.DeviceID(dev), store.AnomalyResponseKind(kind), uint64(finding)
	out.Until, out.UpdatedAt = out.Until.UTC(), out.UpdatedAt.UTC()
	return out, err
}

const respColumns = `device_id, kind, finding, rule, until, data, updated_at`

// GetAnomalyResponse implements store.Store.
func (s *Store) GetAnomalyResponse(ctx context.Context, id store.DeviceID, kind store.AnomalyResponseKind) (store.AnomalyResponse, error) {
	if err := id.Validate(); err != nil {
		return store.AnomalyResponse{}, fmt.Errorf("get response: %w", err)
	}
	if err := kind.Validate(); err != nil {
		return store.AnomalyResponse{}, fmt.Errorf("get response: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return store.AnomalyResponse{}, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+respColumns+` FROM hpfleet.anomaly_responses WHERE device_id = $1 AND kind = $2`, string(id), string(kind))
	if err != nil {
		return store.AnomalyResponse{}, fmt.Errorf("get %s response of %s: %w", kind, id, err)
	}
	out, err := pgx.CollectExactlyOneRow(rows, scanResponse)
	if errors.Is(err, pgx.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.AnomalyResponse{}, fmt.Errorf("get %s response of %s: %w", kind, id, err)
	}
	return out, nil
}

// ListAnomalyResponses implements store.Store.
func (s *Store) ListAnomalyResponses(ctx context.Context, limit int) ([]store.AnomalyResponse, error) {
	if err := store.ValidLimit(limit, store.MaxPageSize); err != nil {
		return nil, fmt.Errorf("list responses: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+respColumns+` FROM hpfleet.anomaly_responses ORDER BY until, kind, device_id LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("list responses: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanResponse)
	if err != nil {
		return nil, fmt.Errorf("list responses: %w", err)
	}
	return out, nil
}

// DeleteAnomalyResponse implements store.Store.
func (s *Store) DeleteAnomalyResponse(ctx context.Context, id store.DeviceID, kind store.AnomalyResponseKind) error {
	if err := id.Validate(); err != nil {
		return fmt.Errorf("delete response: %w", err)
	}
	if err := kind.Validate(); err != nil {
		return fmt.Errorf("delete response: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM hpfleet.anomaly_responses WHERE device_id = $1 AND kind = $2`, string(id), string(kind))
	if err != nil {
		return fmt.Errorf("delete %s response of %s: %w", kind, id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete %s response of %s: %w", kind, id, store.ErrNotFound)
	}
	return nil
}

// leaseCheck is how often a lease's connection is checked; a lease whose
// connection broke is reported lost within about this time (PostgreSQL has
// released the lock by then, or will when it notices the session gone).
const leaseCheck = 2 * time.Second

// leaseKey is the advisory lock key of a role.
func leaseKey(role string) int64 {
	h := fnv.New64a()
	h.Write([]byte("hpfleet lease\x00" + role))
	return int64(h.Sum64())
}

type pgLease struct {
	conn *pgxpool.Conn
	key  int64
	lost chan struct{}
	stop chan struct{}
	once sync.Once
	done chan struct{}
}

func (l *pgLease) Lost() <-chan struct{} { return l.lost }

// watch checks the connection until the lease is released or it breaks.
func (l *pgLease) watch() {
	defer close(l.done)
	t := time.NewTicker(leaseCheck)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), leaseCheck)
			// A session that answers still holds its session lock.
			err := l.conn.Ping(ctx)
			cancel()
			if err != nil {
				close(l.lost)
				return
			}
		}
	}
}

func (l *pgLease) Release() {
	l.once.Do(func() {
		close(l.stop)
		<-l.done
		select {
		case <-l.lost:
			// The connection is suspect: drop it rather than pool it.
			l.conn.Conn().Close(context.Background())
		default:
			ctx, cancel := context.WithTimeout(context.Background(), leaseCheck)
			if _, err := l.conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, l.key); err != nil {
				l.conn.Conn().Close(context.Background())
			}
			cancel()
		}
		l.conn.Release()
	})
}

// Lead implements store.Store: a session advisory lock, try-only, on a
// connection held for the lease's life.
func (s *Store) Lead(ctx context.Context, role string) (store.Lease, error) {
	if err := store.CheckLeaseRole(role); err != nil {
		return nil, fmt.Errorf("lead: %w", err)
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("lead %s: %w", role, err)
	}
	key := leaseKey(role)
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&got); err != nil {
		conn.Release()
		return nil, fmt.Errorf("lead %s: %w", role, err)
	}
	if !got {
		conn.Release()
		return nil, fmt.Errorf("lead %s: %w: another replica holds it", role, store.ErrState)
	}
	l := &pgLease{conn: conn, key: key, lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	go l.watch()
	return l, nil
}
