package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hardphone/hardphone/fleet/store"
)

// Buckets of the security-monitoring records (schema 4).
var (
	bEvStream  = []byte("ev_stream")  // device ID -> store.MarshalEventStream
	bEvRec     = []byte("ev_rec")     // device ID -> bucket: pos BE -> evRec
	bObs       = []byte("anom_obs")   // seq BE -> obsRec; its sequence numbers observations
	bFind      = []byte("anom_find")  // ID BE -> findRec
	bAnomState = []byte("anom_state") // keyState -> stateRec; keyFindCount -> u64
	bResp      = []byte("anom_resp")  // kind 0x00 device -> respRec

	keyState     = []byte("state")
	keyFindCount = []byte("find_count")
)

type evRec struct {
	Chain    []byte    `json:"chain"`
	Seq      uint64    `json:"seq"`
	Type     uint8     `json:"type"`
	Time     time.Time `json:"time"`
	Kind     string    `json:"kind,omitempty"`
	Severity uint8     `json:"severity,omitempty"`
	Raw      []byte    `json:"raw"`
}

type obsRec struct {
	Device string    `json:"device"`
	At     time.Time `json:"at"`
	Data   []byte    `json:"data"`
}

type findRec struct {
	Time     time.Time `json:"time"`
	Rule     string    `json:"rule"`
	Severity uint8     `json:"severity"`
	Devices  []string  `json:"devices,omitempty"`
	Data     []byte    `json:"data"`
}

type stateRec struct {
	Rev     uint64    `json:"rev"`
	Cursor  uint64    `json:"cursor"`
	SavedAt time.Time `json:"saved_at"`
	Data    []byte    `json:"data"`
}

type respRec struct {
	Finding   uint64    `json:"finding"`
	Rule      string    `json:"rule"`
	Until     time.Time `json:"until"`
	Data      []byte    `json:"data,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

func getStream(tx *bolt.Tx, id store.DeviceID) (store.EventStream, bool, error) {
	v := tx.Bucket(bEvStream).Get([]byte(id))
	if v == nil {
		return store.EventStream{}, false, nil
	}
	s, err := store.UnmarshalEventStream(id, v)
	return s, err == nil, err
}

// EventStream implements store.Store.
func (s *Store) EventStream(ctx context.Context, id store.DeviceID) (store.EventStream, error) {
	if err := id.Validate(); err != nil {
		return store.EventStream{}, fmt.Errorf("event stream: %w", err)
	}
	var st store.EventStream
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var ok bool
		var err error
		st, ok, err = getStream(tx, id)
		if err == nil && !ok {
			err = store.ErrNotFound
		}
		return err
	})
	if err != nil {
		return store.EventStream{}, fmt.Errorf("event stream of %s: %w", id, err)
	}
	return st, nil
}

// AppendEvents implements store.Store.
func (s *Store) AppendEvents(ctx context.Context, id store.DeviceID, a store.EventAppend, prev uint64) (store.EventStream, error) {
	a, err := store.ValidateEventAppend(id, a)
	if err != nil {
		return store.EventStream{}, fmt.Errorf("append events: %w", err)
	}
	var out store.EventStream
	err = s.update(ctx, func(tx *bolt.Tx) error {
		if _, err := getDevice(tx, id); err != nil {
			return err
		}
		cur, _, err := getStream(tx, id)
		if err != nil {
			return err
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
		b, err := tx.Bucket(bEvRec).CreateBucketIfNotExists([]byte(id))
		if err != nil {
			return err
		}
		for _, r := range a.Records {
			v, err := json.Marshal(evRec{r.Chain[:], r.Seq, r.Type, r.Time, r.Kind, r.Severity, r.Raw})
			if err != nil {
				return err
			}
			if err := b.Put(u64(st.NextPos), v); err != nil {
				return err
			}
			st.NextPos++
			st.Records++
			st.Bytes += int64(len(r.Raw))
		}
		// Positions are contiguous from FirstPos: the ones to drop are a
		// run at the start.
		c := b.Cursor()
		for k, v := c.First(); k != nil && st.Records > store.MaxEventsPerDevice; k, v = c.First() {
			var r evRec
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode event record %x: %w", k, err)
			}
			if err := c.Delete(); err != nil {
				return err
			}
			st.Records--
			st.Bytes -= int64(len(r.Raw))
			st.Truncated++
			st.FirstPos = binary.BigEndian.Uint64(k) + 1
		}
		v, err := store.MarshalEventStream(st)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bEvStream).Put([]byte(id), v); err != nil {
			return err
		}
		if _, err := appendObs(tx, a.Observations); err != nil {
			return err
		}
		out = st
		return nil
	})
	if err != nil {
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
	var out []store.EventRecord
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bEvRec).Bucket([]byte(id))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		k, v := c.Seek(u64(after + 1))
		for ; k != nil && len(out) < limit; k, v = c.Next() {
			var r evRec
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode event record %x: %w", k, err)
			}
			if len(r.Chain) != 16 {
				return fmt.Errorf("decode event record %x: chain of %d bytes", k, len(r.Chain))
			}
			er := store.EventRecord{Pos: binary.BigEndian.Uint64(k), Seq: r.Seq, Type: r.Type, Time: r.Time.UTC(),
				Kind: r.Kind, Severity: r.Severity, Raw: r.Raw}
			copy(er.Chain[:], r.Chain)
			out = append(out, er)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list events of %s: %w", id, err)
	}
	return out, nil
}

// appendObs logs observations and drops the oldest beyond the bound. The
// log's keys are contiguous from its first to its last (only prefixes are
// ever deleted), so its length is last-first+1.
func appendObs(tx *bolt.Tx, obs []store.AnomalyObservation) (uint64, error) {
	b := tx.Bucket(bObs)
	var last uint64
	for _, o := range obs {
		seq, err := b.NextSequence()
		if err != nil {
			return 0, err
		}
		v, err := json.Marshal(obsRec{string(o.Device), o.At, o.Data})
		if err != nil {
			return 0, err
		}
		if err := b.Put(u64(seq), v); err != nil {
			return 0, err
		}
		last = seq
	}
	if last == 0 {
		return b.Sequence(), nil
	}
	c := b.Cursor()
	for k, _ := c.First(); k != nil && last-binary.BigEndian.Uint64(k)+1 > store.MaxObservations; k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return 0, err
		}
	}
	return last, nil
}

// AppendObservations implements store.Store.
func (s *Store) AppendObservations(ctx context.Context, obs []store.AnomalyObservation) (uint64, error) {
	obs, err := store.ValidateObservations(obs)
	if err != nil {
		return 0, fmt.Errorf("append observations: %w", err)
	}
	var last uint64
	err = s.update(ctx, func(tx *bolt.Tx) error {
		for _, o := range obs {
			if _, err := getDevice(tx, o.Device); err != nil {
				return err
			}
		}
		var err error
		last, err = appendObs(tx, obs)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("append observations: %w", err)
	}
	return last, nil
}

// ListObservations implements store.Store.
func (s *Store) ListObservations(ctx context.Context, after uint64, limit int) ([]store.AnomalyObservation, error) {
	if err := store.ValidLimit(limit, store.MaxPageSize); err != nil {
		return nil, fmt.Errorf("list observations: %w", err)
	}
	var out []store.AnomalyObservation
	err := s.view(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(bObs).Cursor()
		for k, v := c.Seek(u64(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
			var r obsRec
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode observation %x: %w", k, err)
			}
			out = append(out, store.AnomalyObservation{Seq: binary.BigEndian.Uint64(k), Device: store.DeviceID(r.Device), At: r.At.UTC(), Data: r.Data})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list observations: %w", err)
	}
	return out, nil
}

// DeleteObservations implements store.Store.
func (s *Store) DeleteObservations(ctx context.Context, through uint64) (int, error) {
	n := 0
	err := s.update(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(bObs).Cursor()
		for k, _ := c.First(); k != nil && bytes.Compare(k, u64(through)) <= 0; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("delete observations: %w", err)
	}
	return n, nil
}

func getCount(b *bolt.Bucket, key []byte) uint64 {
	if v := b.Get(key); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// PutAnomalyFinding implements store.Store.
func (s *Store) PutAnomalyFinding(ctx context.Context, f store.AnomalyFinding) error {
	if err := f.Validate(); err != nil {
		return fmt.Errorf("put finding: %w", err)
	}
	r := findRec{Time: store.NormTime(f.Time), Rule: f.Rule, Severity: f.Severity, Data: f.Data}
	for _, d := range f.Devices {
		r.Devices = append(r.Devices, string(d))
	}
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("put finding %d: %w", f.ID, err)
	}
	err = s.update(ctx, func(tx *bolt.Tx) error {
		b, meta := tx.Bucket(bFind), tx.Bucket(bAnomState)
		n := getCount(meta, keyFindCount)
		if b.Get(u64(f.ID)) == nil {
			n++
		}
		if err := b.Put(u64(f.ID), v); err != nil {
			return err
		}
		c := b.Cursor()
		for k, _ := c.First(); k != nil && n > store.MaxAnomalyFindings; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
			n--
		}
		return meta.Put(keyFindCount, u64(n))
	})
	if err != nil {
		return fmt.Errorf("put finding %d: %w", f.ID, err)
	}
	return nil
}

// ListAnomalyFindings implements store.Store.
func (s *Store) ListAnomalyFindings(ctx context.Context, q store.FindingQuery) (store.Page[store.AnomalyFinding], error) {
	if err := q.Validate(); err != nil {
		return store.Page[store.AnomalyFinding]{}, fmt.Errorf("list findings: %w", err)
	}
	var page store.Page[store.AnomalyFinding]
	err := s.view(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(bFind).Cursor()
		var k, v []byte
		if q.Before == 0 {
			k, v = c.Last()
		} else {
			k, v = c.Seek(u64(q.Before))
			if k == nil {
				k, v = c.Last()
			}
			for k != nil && binary.BigEndian.Uint64(k) >= q.Before {
				k, v = c.Prev()
			}
		}
		for ; k != nil; k, v = c.Prev() {
			var r findRec
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode finding %x: %w", k, err)
			}
			if q.Rule != "" && r.Rule != q.Rule || q.Device != "" && !slices.Contains(r.Devices, string(q.Device)) {
				continue
			}
			id := binary.BigEndian.Uint64(k)
			if len(page.Items) == q.Limit {
				page.Next = fmt.Sprint(page.Items[len(page.Items)-1].ID)
				return nil
			}
			f := store.AnomalyFinding{ID: id, Time: r.Time.UTC(), Rule: r.Rule, Severity: r.Severity, Data: r.Data}
			for _, d := range r.Devices {
				f.Devices = append(f.Devices, store.DeviceID(d))
			}
			page.Items = append(page.Items, f)
		}
		return nil
	})
	if err != nil {
		return store.Page[store.AnomalyFinding]{}, fmt.Errorf("list findings: %w", err)
	}
	return page, nil
}

// AnomalyState implements store.Store.
func (s *Store) AnomalyState(ctx context.Context) (store.AnomalyState, error) {
	var st store.AnomalyState
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bAnomState).Get(keyState)
		if v == nil {
			return store.ErrNotFound
		}
		var r stateRec
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("decode: %w", err)
		}
		st = store.AnomalyState{Rev: r.Rev, Cursor: r.Cursor, SavedAt: r.SavedAt.UTC(), Data: r.Data}
		return nil
	})
	if err != nil {
		return store.AnomalyState{}, fmt.Errorf("anomaly state: %w", err)
	}
	return st, nil
}

// PutAnomalyState implements store.Store.
func (s *Store) PutAnomalyState(ctx context.Context, st store.AnomalyState, prev uint64) (store.AnomalyState, error) {
	if err := st.Validate(); err != nil {
		return store.AnomalyState{}, fmt.Errorf("put anomaly state: %w", err)
	}
	st.SavedAt, st.Rev = store.NormTime(st.SavedAt), prev+1
	v, err := json.Marshal(stateRec{st.Rev, st.Cursor, st.SavedAt, st.Data})
	if err != nil {
		return store.AnomalyState{}, fmt.Errorf("put anomaly state: %w", err)
	}
	err = s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bAnomState)
		var have uint64
		if cur := b.Get(keyState); cur != nil {
			var r stateRec
			if err := json.Unmarshal(cur, &r); err != nil {
				return fmt.Errorf("decode: %w", err)
			}
			have = r.Rev
		}
		if have != prev {
			return fmt.Errorf("%w: revision %d stored, %d expected", store.ErrState, have, prev)
		}
		return b.Put(keyState, v)
	})
	if err != nil {
		return store.AnomalyState{}, fmt.Errorf("put anomaly state: %w", err)
	}
	st.Data = bytes.Clone(st.Data)
	return st, nil
}

func respKey(id store.DeviceID, kind store.AnomalyResponseKind) []byte {
	return cat([]byte(kind), []byte{0}, []byte(id))
}

// PutAnomalyResponse implements store.Store.
func (s *Store) PutAnomalyResponse(ctx context.Context, r store.AnomalyResponse) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("put response: %w", err)
	}
	v, err := json.Marshal(respRec{r.Finding, r.Rule, store.NormTime(r.Until), r.Data, store.NormTime(r.UpdatedAt)})
	if err != nil {
		return fmt.Errorf("put response: %w", err)
	}
	err = s.update(ctx, func(tx *bolt.Tx) error {
		if _, err := getDevice(tx, r.Device); err != nil {
			return err
		}
		return tx.Bucket(bResp).Put(respKey(r.Device, r.Kind), v)
	})
	if err != nil {
		return fmt.Errorf("put %s response of %s: %w", r.Kind, r.Device, err)
	}
	return nil
}

func decResp(k, v []byte) (store.AnomalyResponse, error) {
	kind, id, ok := bytes.Cut(k, []byte{0})
	if !ok {
		return store.AnomalyResponse{}, fmt.Errorf("response key %q malformed", k)
	}
	var r respRec
	if err := json.Unmarshal(v, &r); err != nil {
		return store.AnomalyResponse{}, fmt.Errorf("decode response %q: %w", k, err)
	}
	return store.AnomalyResponse{Device: store.DeviceID(id), Kind: store.AnomalyResponseKind(kind), Finding: r.Finding, Rule: r.Rule,
		Until: r.Until.UTC(), Data: r.Data, UpdatedAt: r.UpdatedAt.UTC()}, nil
}

// GetAnomalyResponse implements store.Store.
func (s *Store) GetAnomalyResponse(ctx context.Context, id store.DeviceID, kind store.AnomalyResponseKind) (store.AnomalyResponse, error) {
	if err := id.Validate(); err != nil {
		return store.AnomalyResponse{}, fmt.Errorf("get response: %w", err)
	}
	if err := kind.Validate(); err != nil {
		return store.AnomalyResponse{}, fmt.Errorf("get response: %w", err)
	}
	var out store.AnomalyResponse
	err := s.view(ctx, func(tx *bolt.Tx) error {
		k := respKey(id, kind)
		v := tx.Bucket(bResp).Get(k)
		if v == nil {
			return store.ErrNotFound
		}
		var err error
		out, err = decResp(k, v)
		return err
	})
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
	var out []store.AnomalyResponse
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bResp).ForEach(func(k, v []byte) error {
			r, err := decResp(k, v)
			if err != nil {
				return err
			}
			out = append(out, r)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list responses: %w", err)
	}
	slices.SortFunc(out, func(a, b store.AnomalyResponse) int {
		if c := a.Until.Compare(b.Until); c != 0 {
			return c
		}
		return bytes.Compare(respKey(a.Device, a.Kind), respKey(b.Device, b.Kind))
	})
	return out[:min(len(out), limit)], nil
}

// DeleteAnomalyResponse implements store.Store.
func (s *Store) DeleteAnomalyResponse(ctx context.Context, id store.DeviceID, kind store.AnomalyResponseKind) error {
	if err := id.Validate(); err != nil {
		return fmt.Errorf("delete response: %w", err)
	}
	if err := kind.Validate(); err != nil {
		return fmt.Errorf("delete response: %w", err)
	}
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bResp)
		k := respKey(id, kind)
		if b.Get(k) == nil {
			return store.ErrNotFound
		}
		return b.Delete(k)
	})
	if err != nil {
		return fmt.Errorf("delete %s response of %s: %w", kind, id, err)
	}
	return nil
}

// leases are the roles this process holds: bbolt's file lock already
// makes the process the only one on the database.
type leases struct {
	mu   sync.Mutex
	held map[string]bool
}

type boltLease struct {
	l    *leases
	role string
	once sync.Once
	lost chan struct{} // never closed: a process cannot lose its file lock
}

func (l *boltLease) Lost() <-chan struct{} { return l.lost }

func (l *boltLease) Release() {
	l.once.Do(func() {
		l.l.mu.Lock()
		delete(l.l.held, l.role)
		l.l.mu.Unlock()
	})
}

// Lead implements store.Store.
func (s *Store) Lead(ctx context.Context, role string) (store.Lease, error) {
	if err := store.CheckLeaseRole(role); err != nil {
		return nil, fmt.Errorf("lead: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.leases.mu.Lock()
	defer s.leases.mu.Unlock()
	if s.leases.held == nil {
		s.leases.held = map[string]bool{}
	}
	if s.leases.held[role] {
		return nil, fmt.Errorf("lead %s: %w: held by this process already", role, store.ErrState)
	}
	s.leases.held[role] = true
	return &boltLease{l: &s.leases, role: role, lost: make(chan struct{})}, nil
}
