package server

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/hardphone/hardphone/crypto/eventlog"
	"github.com/hardphone/hardphone/fleet/anomaly"
	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/store"
)

// Event export: a phone POSTs runs of its journal (crypto/eventlog
// records) over mutual TLS. The server proves each run (CheckSegment: in
// order, chained, ending in a record the device's enrolled identity key
// signed), joins it to what it holds of that device's journal, and stores
// it with the observations it makes for the anomaly detector, all in one
// transaction. Nothing is stored from a batch that fails any check.
//
// Joining: a run that starts right after the head the fleet holds must
// chain to it (its first prev is the head's hash); a run that starts
// later leaves a gap, "missing" until a signed truncation record of the
// phone vouches for exactly that hole ("truncated"); a run of a journal
// the fleet has not seen replaces the old one ("replaced", the phone
// reset its journal); records the fleet already holds are dropped if they
// match and refused as a fork if they do not; a run entirely of records
// the fleet holds, or of a journal it saw replaced, is a replay and
// refused.

// Per-device export limits: sustained rates and bursts (token buckets).
const (
	defaultEventBatchRate   = 1.0 // batches per second
	defaultEventBatchBurst  = 20
	defaultEventRecordRate  = 50.0 // records per second
	defaultEventRecordBurst = 4 * api.MaxEventBatchRecords
	// maxLimitedDevices bounds the buckets kept; idle (full) buckets are
	// dropped first.
	maxLimitedDevices = 200000
	// appendAttempts bounds the retries of a batch that lost a race with
	// another replica.
	appendAttempts = 4
)

// EventLimits are the per-device export limits.
type EventLimits struct {
	BatchRate, RecordRate   float64
	BatchBurst, RecordBurst int
}

// WithEventLimits sets the per-device export limits (defaults: 1 batch/s
// with bursts of 20, 50 records/s with bursts of 2048). A phone over them
// gets 429 and retries later.
func WithEventLimits(l EventLimits) Option {
	return func(o *options) error {
		if l.BatchRate <= 0 || l.RecordRate <= 0 || l.BatchBurst < 1 || l.RecordBurst < api.MaxEventBatchRecords {
			return fmt.Errorf("event limits %+v: want positive rates, a batch burst of at least 1 and a record burst of at least %d", l, api.MaxEventBatchRecords)
		}
		o.eventLimits = l
		return nil
	}
}

// bucket is a token bucket.
type bucket struct {
	tokens float64
	at     time.Time
}

func (b *bucket) take(n, rate, burst float64, now time.Time) bool {
	b.tokens = min(burst, b.tokens+rate*now.Sub(b.at).Seconds())
	b.at = now
	if b.tokens < n {
		return false
	}
	b.tokens -= n
	return true
}

// limiter holds a batch and a record bucket per device.
type limiter struct {
	l  EventLimits
	mu sync.Mutex // guards m
	m  map[store.DeviceID]*[2]bucket
}

func newLimiter(l EventLimits) *limiter { return &limiter{l: l, m: map[store.DeviceID]*[2]bucket{}} }

// allow takes one batch of n records for a device, or says when to retry.
func (l *limiter) allow(id store.DeviceID, n int, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.m[id]
	if !ok {
		if len(l.m) >= maxLimitedDevices {
			for k, v := range l.m {
				if v[0].tokens+l.l.BatchRate*now.Sub(v[0].at).Seconds() >= float64(l.l.BatchBurst) {
					delete(l.m, k)
				}
			}
			if len(l.m) >= maxLimitedDevices {
				return false, time.Second
			}
		}
		b = &[2]bucket{{float64(l.l.BatchBurst), now}, {float64(l.l.RecordBurst), now}}
		l.m[id] = b
	}
	batches, records := b[0], b[1]
	if !batches.take(1, l.l.BatchRate, float64(l.l.BatchBurst), now) {
		return false, time.Duration(float64(time.Second) / l.l.BatchRate)
	}
	if !records.take(float64(n), l.l.RecordRate, float64(l.l.RecordBurst), now) {
		return false, time.Duration(float64(n) / l.l.RecordRate * float64(time.Second))
	}
	b[0], b[1] = batches, records
	return true, 0
}

// eventBatch validates a body's bounds for decode.
type eventBatch api.EventBatch

func (b *eventBatch) Validate() error { return (*api.EventBatch)(b).Validate() }

// postEvents takes a batch of a phone's journal.
func (s *Server) postEvents(w http.ResponseWriter, r *http.Request) error {
	p, err := s.device(r)
	if err != nil {
		return err
	}
	if err := p.live(); err != nil {
		return err
	}
	var b eventBatch
	if err := decode(w, r, api.MaxEventBatchBody, &b); err != nil {
		return err
	}
	id := p.device.ID
	if ok, wait := s.evLimit.allow(id, len(b.Records), s.o.now()); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)+1))
		return refuse(api.CodeLimit, "device %s sends events faster than the fleet takes them; retry in %v", id, wait.Round(time.Second)).with("device", string(id))
	}
	var seg *eventlog.Segment
	if len(b.Records) > 0 {
		if seg, err = eventlog.CheckSegment(b.Records, p.key); err != nil {
			s.metrics.add("events_refused")
			return refuse(api.CodeBadRequest, "events refused: %v", err).with("device", string(id))
		}
	}
	var ack api.EventAck
	for attempt := 1; ; attempt++ {
		ack, err = s.ingest(r.Context(), id, seg, b.Calls)
		if !errors.Is(err, store.ErrState) || attempt == appendAttempts {
			break
		}
	}
	if err != nil {
		var rf *refusal
		if errors.As(err, &rf) {
			return rf
		}
		return storeError("store events", err).with("device", string(id))
	}
	s.metrics.add("events_batches")
	writeJSON(w, http.StatusOK, ack)
	return nil
}

// getEvents answers the fleet's cursor of the phone's journal.
func (s *Server) getEvents(w http.ResponseWriter, r *http.Request) error {
	p, err := s.device(r)
	if err != nil {
		return err
	}
	if err := p.live(); err != nil {
		return err
	}
	st, err := s.st.EventStream(r.Context(), p.device.ID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return storeError("event stream", err)
	}
	writeJSON(w, http.StatusOK, ackOf(st, 0, 0))
	return nil
}

func ackOf(st store.EventStream, stored, gaps int) api.EventAck {
	a := api.EventAck{Seq: st.Head, CallSeq: st.CallSeq, Stored: stored, Gaps: gaps}
	if st.Head != 0 {
		a.Chain, a.Hash = hex.EncodeToString(st.Chain[:]), hex.EncodeToString(st.HeadHash[:])
	}
	return a
}

// ingest joins a proved segment (nil for a batch of calls only) to the
// device's stream and stores it with its observations.
func (s *Server) ingest(ctx context.Context, id store.DeviceID, seg *eventlog.Segment, calls []api.CallRecord) (api.EventAck, error) {
	now := s.o.now()
	st, err := s.st.EventStream(ctx, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return api.EventAck{}, err
	}
	prevRev := st.Rev
	next := st
	next.UpdatedAt = now
	var fresh []*eventlog.Record
	newGaps := 0
	if seg != nil {
		if fresh, newGaps, err = join(&next, seg, now); err != nil {
			if rf := (*refusal)(nil); errors.As(err, &rf) {
				rf.with("device", string(id))
				if rf.code == api.CodeConflict {
					s.metrics.add("events_replayed")
				}
			}
			return api.EventAck{}, err
		}
	}
	a := store.EventAppend{}
	for _, rec := range fresh {
		er := store.EventRecord{Chain: seg.Chain, Seq: rec.Seq, Type: uint8(rec.Type), Time: store.ClampTime(rec.Time), Raw: rec.Raw}
		if e := rec.Event; e != nil {
			er.Kind, er.Severity = e.Kind, e.Severity
		}
		a.Records = append(a.Records, er)
	}
	var obs []anomaly.Observation
	for _, rec := range fresh {
		if o, ok := securityObservation(id, rec); ok {
			obs = append(obs, o)
		}
	}
	for _, c := range calls {
		if c.Seq <= next.CallSeq {
			continue // sent before; the phone missed the answer
		}
		next.CallSeq = c.Seq
		dir := anomaly.Outbound
		if c.Direction == "in" {
			dir = anomaly.Inbound
		}
		obs = append(obs, anomaly.Call{Device: string(id), Time: c.Start.UTC(), Direction: dir, Number: c.Number,
			Duration: anomaly.Duration(time.Duration(c.DurationSeconds) * time.Second), Answered: c.Answered})
	}
	if s.anom != nil {
		a.Observations = s.encodeObservations(id, obs, now)
	}
	next.Received += uint64(len(fresh))
	a.Stream = next
	stored, err := s.st.AppendEvents(ctx, id, a, prevRev)
	if err != nil {
		return api.EventAck{}, err
	}
	if len(a.Observations) > 0 {
		s.anom.wake()
	}
	s.auditEvents(ctx, id, fresh)
	if newGaps > 0 {
		s.log.Warn("gap in a device's exported event journal", "device", string(id), "gaps", newGaps)
	}
	return ackOf(stored, len(fresh), newGaps), nil
}

// encodeObservations encodes what the detector takes; an observation it
// would refuse (a time out of range) is counted and left out, the records
// are stored all the same.
func (s *Server) encodeObservations(id store.DeviceID, obs []anomaly.Observation, now time.Time) []store.AnomalyObservation {
	out := make([]store.AnomalyObservation, 0, len(obs))
	for _, o := range obs {
		b, err := anomaly.EncodeObservation(o)
		if err != nil {
			s.metrics.add("observations_refused")
			continue
		}
		out = append(out, store.AnomalyObservation{Device: id, At: now, Data: b})
	}
	return out
}

// securityObservation maps a journal event to what the detector takes: a
// suppression summary stands for the events it folded (its kind and
// count).
func securityObservation(id store.DeviceID, rec *eventlog.Record) (anomaly.SecurityEvent, bool) {
	e := rec.Event
	if e == nil {
		return anomaly.SecurityEvent{}, false
	}
	o := anomaly.SecurityEvent{Device: string(id), Time: rec.Time, Kind: e.Kind, Count: 1}
	if e.Peer.IsValid() {
		o.Peer = e.Peer.Addr().Unmap()
	}
	if e.Kind == "events.suppressed" {
		n, err := strconv.Atoi(e.Detail["count"])
		k := e.Detail["kind"]
		if err != nil || n < 1 || !eventlog.WellFormedKind(k) {
			return anomaly.SecurityEvent{}, false
		}
		o.Kind, o.Count = k, min(n, 1<<20)
		if p, err := netip.ParseAddrPort(e.Detail["last_peer"]); err == nil {
			o.Peer = p.Addr().Unmap()
		}
	}
	return o, true
}

// join fits a proved segment to the stream (see the top of this file) and
// updates next; it returns the records to store and how many gaps it
// found. A refusal is a *refusal.
func join(next *store.EventStream, seg *eventlog.Segment, now time.Time) ([]*eventlog.Record, int, error) {
	recs := seg.Records
	first, last := seg.First(), seg.Last()
	have := next.Head != 0
	gaps := 0
	addGap := func(g store.EventGap) {
		g.At = now
		next.Gaps = append(next.Gaps, g)
		if len(next.Gaps) > store.MaxEventGaps {
			next.Gaps = next.Gaps[len(next.Gaps)-store.MaxEventGaps:]
		}
		gaps++
	}
	switch {
	case have && seg.Chain == next.Chain:
		if last.Seq <= next.Head {
			return nil, 0, refuse(api.CodeConflict, "replayed: the fleet holds records up to %d of this journal, the batch ends at %d", next.Head, last.Seq)
		}
		if first.Seq <= next.Head {
			k := int(next.Head - first.Seq)
			if [32]byte(recs[k].Hash) != next.HeadHash {
				return nil, 0, refuse(api.CodeConflict, "fork: record %d differs from the one the fleet holds: the journal was rewritten after it was exported", next.Head)
			}
			recs = recs[k+1:]
			first = recs[0]
		}
		switch {
		case first.Seq == next.Head+1 && [32]byte(first.Prev) != next.HeadHash:
			return nil, 0, refuse(api.CodeConflict, "fork: record %d does not chain to record %d the fleet holds: the journal was rewritten after it was exported", first.Seq, next.Head)
		case first.Seq > next.Head+1:
			addGap(store.EventGap{Kind: store.GapMissing, Chain: seg.Chain, From: next.Head + 1, To: first.Seq - 1, NextPrev: [32]byte(first.Prev)})
		}
	case have:
		for _, g := range next.Gaps {
			if g.Kind == store.GapReplaced && g.OldChain == seg.Chain {
				return nil, 0, refuse(api.CodeConflict, "replayed: journal %x was replaced by the phone before", seg.Chain)
			}
		}
		g := store.EventGap{Kind: store.GapReplaced, Chain: seg.Chain, OldChain: next.Chain, From: next.Head + 1, NextPrev: [32]byte(first.Prev)}
		if first.Seq > 1 {
			g.To = first.Seq - 1
		}
		addGap(g)
		next.Replaced++
	default:
		if first.Seq > 1 {
			addGap(store.EventGap{Kind: store.GapMissing, Chain: seg.Chain, From: 1, To: first.Seq - 1, NextPrev: [32]byte(first.Prev)})
		}
	}
	// A signed truncation record explains the hole before the record it
	// vouches for.
	for _, rec := range recs {
		s := rec.Signed
		if rec.Type != eventlog.RecordTruncation || s == nil {
			continue
		}
		for i := range next.Gaps {
			g := &next.Gaps[i]
			if g.Kind == store.GapMissing && g.Chain == seg.Chain && g.To+1 == s.FirstSeq && g.NextPrev == [32]byte(s.FirstPrev) {
				g.Kind, g.Undelivered = store.GapTruncated, s.Undelivered
			}
		}
	}
	next.Chain, next.Head, next.HeadHash, next.LastSigned = seg.Chain, last.Seq, [32]byte(last.Hash), last.Seq
	return recs, gaps, nil
}

// deviceEvents shows a device's exported journal (admin).
func (s *Server) deviceEvents(w http.ResponseWriter, r *http.Request, _ string) error {
	id, err := deviceID(r)
	if err != nil {
		return err
	}
	if _, err := s.st.GetDevice(r.Context(), id); err != nil {
		return storeError("device", err)
	}
	p, err := page(r)
	if err != nil {
		return err
	}
	var after uint64
	if p.After != "" {
		if after, err = strconv.ParseUint(p.After, 10, 63); err != nil {
			return refuse(api.CodeBadRequest, "after %.24q: want a position", p.After)
		}
	}
	out := api.DeviceEvents{DeviceID: string(id), Records: []api.EventRecord{}}
	st, err := s.st.EventStream(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeJSON(w, http.StatusOK, out)
		return nil
	case err != nil:
		return storeError("event stream", err)
	}
	out.Chain, out.Head, out.HeadHash, out.LastSigned, out.CallSeq = hex.EncodeToString(st.Chain[:]), st.Head, hex.EncodeToString(st.HeadHash[:]), st.LastSigned, st.CallSeq
	out.Received, out.Stored, out.Truncated, out.Replaced, out.UpdatedAt = st.Received, st.Records, st.Truncated, st.Replaced, st.UpdatedAt
	for _, g := range st.Gaps {
		ag := api.EventGap{Kind: string(g.Kind), Chain: hex.EncodeToString(g.Chain[:]), From: g.From, To: g.To, Undelivered: g.Undelivered, At: g.At}
		if g.Kind == store.GapReplaced {
			ag.OldChain = hex.EncodeToString(g.OldChain[:])
		}
		out.Gaps = append(out.Gaps, ag)
	}
	recs, err := s.st.ListEvents(r.Context(), id, after, p.Limit)
	if err != nil {
		return storeError("events", err)
	}
	for _, er := range recs {
		out.Records = append(out.Records, recordView(er))
	}
	if len(recs) == p.Limit {
		out.Next = strconv.FormatUint(recs[len(recs)-1].Pos, 10)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// recordView decodes a stored record again: the store keeps the bytes the
// phone sent, and what an admin sees is read from them.
func recordView(er store.EventRecord) api.EventRecord {
	v := api.EventRecord{Pos: er.Pos, Chain: hex.EncodeToString(er.Chain[:]), Seq: er.Seq, Time: er.Time}
	rec, err := eventlog.Decode(er.Raw)
	if err != nil {
		v.Type = "undecodable"
		return v
	}
	v.Type, v.Time, v.Hash = rec.Type.String(), rec.Time, hex.EncodeToString(rec.Hash[:])
	if e := rec.Event; e != nil {
		v.Kind, v.Account, v.Detail = e.Kind, e.Account, e.Detail
		v.Severity = anomaly.Severity(e.Severity).String()
		if e.Peer.IsValid() {
			v.Peer = e.Peer.String()
		}
	}
	if sg := rec.Signed; sg != nil {
		switch rec.Type {
		case eventlog.RecordCheckpoint:
			v.Reason = sg.Reason.String()
		case eventlog.RecordTruncation:
			v.FirstSeq, v.Dropped = sg.FirstSeq, sg.Dropped
		}
	}
	return v
}
