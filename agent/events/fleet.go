package events

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hardphone/hardphone/fleet/api"
)

// The fleet export keeps its own cursor, apart from the syslog exporter's
// (one collector being down must not hold the other back):
//
//	events/
//	  fleet_cursor   chain ID (16) | seq (u64 BE) | hash (32): the last
//	                 record hpfleet acknowledged
//	  fleet_calls    u64 BE: the last call-history seq hpfleet acknowledged
var (
	keyFleetCursor = []byte("fleet_cursor")
	keyFleetCalls  = []byte("fleet_calls")
)

// Defaults of a FleetExporter.
const (
	DefaultFleetDelay     = 2 * time.Second
	DefaultFleetCallEvery = time.Minute
	// fleetBatch is the most records one batch carries (api's bound).
	fleetBatch = api.MaxEventBatchRecords
)

// FleetTarget is where the journal goes: hpfleet's POST and GET
// /v1/events over mutual TLS. fleet/client's Client has both.
type FleetTarget interface {
	PushEvents(ctx context.Context, b api.EventBatch) (*api.EventAck, error)
	EventCursor(ctx context.Context) (*api.EventAck, error)
}

// CallSource lists the calls of the phone's history after a seq, oldest
// first, at most limit (the agent adapts its call history).
type CallSource interface {
	CallsAfter(seq uint64, limit int) ([]api.CallRecord, error)
}

type fleetOptions struct {
	calls                  CallSource
	delay, callEvery       time.Duration
	backoffMin, backoffMax time.Duration
	log                    *slog.Logger
}

// FleetOption configures NewFleetExporter.
type FleetOption func(*fleetOptions) error

// WithFleetCalls sends the calls src lists with the events (what the
// fleet's call rules judge; it tells the fleet whom the phone called).
func WithFleetCalls(src CallSource) FleetOption {
	return func(o *fleetOptions) error {
		if src == nil {
			return errors.New("nil call source")
		}
		o.calls = src
		return nil
	}
}

// WithFleetDelay sets how long the exporter waits after a new record
// before it sends, so a burst goes in one batch.
func WithFleetDelay(d time.Duration) FleetOption {
	return func(o *fleetOptions) error {
		if d < 0 || d > time.Hour {
			return fmt.Errorf("fleet delay %v: want 0..1h", d)
		}
		o.delay = d
		return nil
	}
}

// WithFleetCallEvery sets how often calls are sent when no event is.
func WithFleetCallEvery(d time.Duration) FleetOption {
	return func(o *fleetOptions) error {
		if d <= 0 {
			return fmt.Errorf("fleet call interval %v: want > 0", d)
		}
		o.callEvery = d
		return nil
	}
}

// WithFleetBackoff sets the retry backoff after a failed push: from min,
// doubling up to max, with ±25% jitter.
func WithFleetBackoff(min, max time.Duration) FleetOption {
	return func(o *fleetOptions) error {
		if min <= 0 || max < min {
			return fmt.Errorf("backoff %v..%v: want 0 < min <= max", min, max)
		}
		o.backoffMin, o.backoffMax = min, max
		return nil
	}
}

// WithFleetLogger sets the logger; the default discards.
func WithFleetLogger(l *slog.Logger) FleetOption {
	return func(o *fleetOptions) error {
		if l == nil {
			return errors.New("nil logger")
		}
		o.log = l
		return nil
	}
}

// FleetStats describes the fleet export.
type FleetStats struct {
	// Acked is the last seq hpfleet acknowledged (of the current chain);
	// CallsAcked the last call.
	Acked, CallsAcked uint64
	// Batches and Records count what was sent and taken; Skipped the
	// records that could not be proved (a damaged stretch of the journal)
	// and were left for the fleet to record as a gap.
	Batches, Records, Skipped uint64
	// LastErr is the last push's error, "" when none.
	LastErr string
}

// FleetExporter ships the journal to hpfleet: runs of records exactly as
// stored, each ending in a signed record (a checkpoint is asked for when
// the head is unsigned), which the fleet proves against the identity key
// it enrolled. It resumes from its own cursor, reconciled with the
// fleet's at start (GET), so a phone that lost its state file or the
// fleet's answer neither resends everything nor skips anything.
//
// A stretch of the journal that does not chain (damage Verify would
// name) cannot be proved to the fleet; it is skipped, logged, and shows
// on the fleet as a gap no signed truncation record explains.
type FleetExporter struct {
	j   *Journal
	t   FleetTarget
	o   fleetOptions
	log *slog.Logger

	mu         sync.Mutex // guards the fields below; one push at a time
	reconciled bool
	st         FleetStats
}

// NewFleetExporter makes an exporter of j to t.
func NewFleetExporter(j *Journal, t FleetTarget, opts ...FleetOption) (*FleetExporter, error) {
	o := fleetOptions{delay: DefaultFleetDelay, callEvery: DefaultFleetCallEvery, backoffMin: DefaultBackoffMin,
		backoffMax: DefaultBackoffMax, log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("new fleet exporter: %w", err)
		}
	}
	if j == nil || t == nil {
		return nil, errors.New("new fleet exporter: nil journal or target")
	}
	return &FleetExporter{j: j, t: t, o: o, log: o.log.With("component", "events", "export", "fleet")}, nil
}

// Stats returns the export's progress.
func (e *FleetExporter) Stats() FleetStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.st
}

// fleetCursor is the stored cursor.
type fleetCursor struct {
	chain [chainIDLen]byte
	seq   uint64
	hash  Hash
	calls uint64
}

func (e *FleetExporter) loadCursor() (fleetCursor, error) {
	var c fleetCursor
	err := e.j.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents)
		if b == nil {
			return errors.New("no events bucket")
		}
		if v := b.Get(keyFleetCursor); len(v) == chainIDLen+8+32 {
			copy(c.chain[:], v)
			c.seq = binary.BigEndian.Uint64(v[chainIDLen:])
			copy(c.hash[:], v[chainIDLen+8:])
		}
		if v := b.Get(keyFleetCalls); len(v) == 8 {
			c.calls = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	return c, err
}

func (e *FleetExporter) storeCursor(c fleetCursor) error {
	v := append(append(append([]byte(nil), c.chain[:]...), seqKey(c.seq)...), c.hash[:]...)
	return e.j.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents)
		if b == nil {
			return errors.New("no events bucket")
		}
		if err := b.Put(keyFleetCursor, v); err != nil {
			return err
		}
		return b.Put(keyFleetCalls, seqKey(c.calls))
	})
}

// recordAt returns the stored record seq (nil when gone or damaged).
func (e *FleetExporter) recordAt(seq uint64) *Record {
	recs, err := e.j.List(seq, 1)
	if err != nil || len(recs) == 0 || recs[0].Seq != seq || recs[0].Err != nil {
		return nil
	}
	return &recs[0]
}

// reconcile adopts the fleet's cursor when it is a record of this journal
// as the phone holds it: the fleet's answer is what it has stored.
func (e *FleetExporter) reconcile(ctx context.Context, c *fleetCursor, chain [chainIDLen]byte) error {
	ack, err := e.t.EventCursor(ctx)
	if err != nil {
		return err
	}
	c.calls = max(c.calls, ack.CallSeq)
	if ack.Chain != hex.EncodeToString(chain[:]) {
		if c.chain != chain {
			*c = fleetCursor{calls: c.calls}
		}
		return nil
	}
	rec := e.recordAt(ack.Seq)
	switch {
	case rec != nil && hex.EncodeToString(rec.Hash[:]) == ack.Hash:
		c.chain, c.seq, c.hash = chain, ack.Seq, rec.Hash
	case rec == nil && ack.Seq < e.j.Stats().First:
		// The phone's journal dropped the record since: start at what
		// it still holds.
		c.chain, c.seq = chain, ack.Seq
	default:
		e.log.Error("the fleet holds a different record of this journal than the phone: the journal was rewritten after it was exported",
			"seq", ack.Seq, "fleet_hash", ack.Hash)
	}
	return nil
}

// PushOnce sends everything not yet acknowledged (and the calls) and
// returns how many records the fleet took.
func (e *FleetExporter) PushOnce(ctx context.Context) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	n, err := e.push(ctx)
	if err != nil {
		e.st.LastErr = err.Error()
	} else {
		e.st.LastErr = ""
	}
	return n, err
}

func (e *FleetExporter) push(ctx context.Context) (int, error) {
	c, err := e.loadCursor()
	if err != nil {
		return 0, fmt.Errorf("fleet export: %w", err)
	}
	chain := e.j.Stats().Chain
	if !e.reconciled {
		if err := e.reconcile(ctx, &c, chain); err != nil {
			return 0, fmt.Errorf("fleet export: ask the fleet's cursor: %w", err)
		}
		if err := e.storeCursor(c); err != nil {
			return 0, fmt.Errorf("fleet export: %w", err)
		}
		e.reconciled = true
	}
	if c.chain != chain {
		// A new journal (reset): everything it holds goes.
		c = fleetCursor{chain: chain, calls: c.calls}
	}
	total := 0
	for {
		raws, last, skip, err := e.nextRun(c.seq)
		if err != nil {
			return total, fmt.Errorf("fleet export: %w", err)
		}
		if skip > 0 {
			e.st.Skipped += skip
			c.seq, c.hash = last.Seq, last.Hash
			if err := e.storeCursor(c); err != nil {
				return total, fmt.Errorf("fleet export: %w", err)
			}
			continue
		}
		calls, err := e.pendingCalls(c.calls)
		if err != nil {
			return total, fmt.Errorf("fleet export: call history: %w", err)
		}
		if len(raws) == 0 && len(calls) == 0 {
			e.st.Acked, e.st.CallsAcked = c.seq, c.calls
			return total, nil
		}
		ack, err := e.t.PushEvents(ctx, api.EventBatch{Records: raws, Calls: calls})
		var ae *api.Error
		switch {
		case errors.As(err, &ae) && ae.Code == api.CodeConflict:
			// Replay or fork: the fleet's cursor says where it stands.
			e.log.Warn("the fleet refused a batch as already held or rewritten; asking for its cursor", "err", err)
			e.reconciled = false
			return total, fmt.Errorf("fleet export: %w", err)
		case errors.As(err, &ae) && ae.Code == api.CodeBadRequest && len(raws) > 0:
			// The fleet cannot prove this run (signed by an identity key
			// replaced since): it would refuse it forever. Skip it; the
			// fleet records the gap.
			e.log.Error("the fleet refused records of the journal as unprovable; skipping them", "from", c.seq+1, "to", last.Seq, "err", err)
			e.st.Skipped += uint64(len(raws))
			c.seq, c.hash = last.Seq, last.Hash
			if err := e.storeCursor(c); err != nil {
				return total, fmt.Errorf("fleet export: %w", err)
			}
			continue
		case err != nil:
			return total, fmt.Errorf("fleet export: %w", err)
		}
		e.st.Batches++
		e.st.Records += uint64(ack.Stored)
		total += ack.Stored
		if len(raws) > 0 {
			c.seq, c.hash = last.Seq, last.Hash
		}
		c.calls = max(c.calls, ack.CallSeq)
		if err := e.storeCursor(c); err != nil {
			return total, fmt.Errorf("fleet export: %w", err)
		}
		if ack.Gaps > 0 {
			e.log.Warn("the fleet found a gap in the exported journal", "gaps", ack.Gaps, "acked", ack.Seq)
		}
	}
}

// nextRun returns the next run of records after seq to send: consecutive,
// chained, ending in a signed record. When the run reaching the head is
// unsigned, a checkpoint is written first. When what follows seq cannot be
// proved (a record that does not decode, a break in the chain before any
// signed record), skip counts the records to step over and last is the
// last of them.
func (e *FleetExporter) nextRun(seq uint64) (raws [][]byte, last *Record, skip uint64, err error) {
	for attempt := 0; attempt < 2; attempt++ {
		recs, err := e.j.List(seq+1, fleetBatch)
		if err != nil {
			return nil, nil, 0, err
		}
		if len(recs) == 0 {
			return nil, nil, 0, nil
		}
		end, signed := 0, -1
		for i := range recs {
			r := &recs[i]
			if r.Err != nil || i > 0 && (r.Seq != recs[i-1].Seq+1 || r.Prev != recs[i-1].Hash) {
				break
			}
			end = i + 1
			if r.Signed != nil {
				signed = i
			}
		}
		switch {
		case end == 0:
			// The first record is damaged: step over it.
			return nil, &recs[0], 1, nil
		case signed >= 0:
			for i := 0; i <= signed; i++ {
				raws = append(raws, recs[i].Raw())
			}
			return raws, &recs[signed], 0, nil
		case end < len(recs):
			// A break before any signature: nothing vouches for these.
			e.log.Warn("journal records that do not chain to a signed record; skipped", "from", recs[0].Seq, "to", recs[end-1].Seq)
			return nil, &recs[end-1], uint64(end), nil
		case len(recs) == fleetBatch:
			return nil, nil, 0, fmt.Errorf("no signed record within %d records after %d: the journal's checkpoints are too far apart for the fleet", fleetBatch, seq)
		}
		// The unsigned run reaches the head: sign it, and look again.
		if _, err := e.j.checkpoint(ReasonExport); err != nil {
			return nil, nil, 0, err
		}
	}
	return nil, nil, 0, errors.New("the journal's head stays unsigned after a checkpoint")
}

func (e *FleetExporter) pendingCalls(after uint64) ([]api.CallRecord, error) {
	if e.o.calls == nil {
		return nil, nil
	}
	calls, err := e.o.calls.CallsAfter(after, api.MaxEventBatchCalls)
	if err != nil {
		return nil, err
	}
	out := calls[:0]
	for _, c := range calls {
		if c.Validate() == nil && c.Seq > after && (len(out) == 0 || c.Seq > out[len(out)-1].Seq) {
			out = append(out, c)
		}
	}
	return out, nil
}

// Run pushes until ctx is done: after new records (a short delay lets a
// burst go in one batch), every call interval, and again after a failure
// with backoff. It returns nil when ctx ends.
func (e *FleetExporter) Run(ctx context.Context) error {
	backoff := e.o.backoffMin
	calls := time.NewTicker(e.o.callEvery)
	defer calls.Stop()
	for ctx.Err() == nil {
		changed := e.j.Changed()
		_, err := e.PushOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			wait := jitter(backoff)
			e.log.Warn("fleet export failed; retrying", "err", err, "retry_in", wait)
			backoff = min(2*backoff, e.o.backoffMax)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
			continue
		}
		backoff = e.o.backoffMin
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(e.o.delay):
			}
		case <-calls.C:
		}
	}
	return nil
}
