package events

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/hardphone/hardphone/crypto/eventlog"
	bolt "go.etcd.io/bbolt"
)

// The journal owns the top-level bucket "events" of the state file:
//
//	events/
//	  records/          seq (u64 BE) -> record (see record.go)
//	  chain             chain ID (16 bytes)
//	  last_checkpoint   a copy of the newest signed record (Verify's
//	                    tail-truncation check)
//	  cursor            u64 BE: the last seq the exporter delivered
//	  damaged/records   the records of a journal that could not be
//	                    continued, kept for forensics (the newest only)
var (
	bucketEvents      = []byte("events")
	bucketRecords     = []byte("records")
	keyChain          = []byte("chain")
	keyLastCheckpoint = []byte("last_checkpoint")
	keyCursor         = []byte("cursor")
	bucketDamaged     = []byte("damaged")
)

// Defaults of a Journal.
const (
	DefaultCheckpointEvery    = 64
	DefaultCheckpointInterval = 5 * time.Minute
	DefaultMaxBytes           = 4 << 20
	// MinMaxBytes is the smallest size bound WithMaxBytes takes: room for
	// a few batches of the largest events.
	MinMaxBytes = 256 << 10
	// MaxBatch bounds the events of one Append.
	MaxBatch = 256
	// MaxList bounds the records one List returns.
	MaxList = 1000
)

type journalOptions struct {
	cpEvery    int
	cpInterval time.Duration
	maxBytes   int64
	now        func() time.Time
	log        *slog.Logger
}

// JournalOption configures Open.
type JournalOption func(*journalOptions) error

// WithCheckpointEvery writes a signed checkpoint after every n records.
func WithCheckpointEvery(n int) JournalOption {
	return func(o *journalOptions) error {
		if n < 1 || n > 1<<20 {
			return fmt.Errorf("checkpoint every %d records: want 1..%d", n, 1<<20)
		}
		o.cpEvery = n
		return nil
	}
}

// WithCheckpointInterval writes a signed checkpoint once the oldest record
// not yet covered by a signature is older than d (checked on Append and by
// CheckpointIfDue, which the Recorder calls on a ticker).
func WithCheckpointInterval(d time.Duration) JournalOption {
	return func(o *journalOptions) error {
		if d <= 0 {
			return fmt.Errorf("checkpoint interval %v: want > 0", d)
		}
		o.cpInterval = d
		return nil
	}
}

// WithMaxBytes bounds the journal's records to n bytes. Past it the oldest
// records are dropped, down to three quarters of n, under a signed
// truncation record.
func WithMaxBytes(n int64) JournalOption {
	return func(o *journalOptions) error {
		if n < MinMaxBytes {
			return fmt.Errorf("journal bound %d bytes: want at least %d", n, MinMaxBytes)
		}
		o.maxBytes = n
		return nil
	}
}

// WithClock sets the clock that stamps records; the default is time.Now.
func WithClock(now func() time.Time) JournalOption {
	return func(o *journalOptions) error {
		if now == nil {
			return errors.New("nil clock")
		}
		o.now = now
		return nil
	}
}

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) JournalOption {
	return func(o *journalOptions) error {
		if l == nil {
			return errors.New("nil logger")
		}
		o.log = l
		return nil
	}
}

// Journal is the hash-chained event journal in the state file. It is safe
// for concurrent use. Each Append is one bbolt transaction, committed (and
// so fsynced) before Append returns.
type Journal struct {
	db     *bolt.DB
	signer crypto.Signer
	keyID  [keyIDLen]byte
	o      journalOptions
	log    *slog.Logger

	// mu guards every field below and serialises writers of the bucket.
	mu     sync.Mutex
	closed bool
	chain  [chainIDLen]byte
	// first and head are the lowest and highest seq stored; headHash is
	// the hash of record head.
	first, head uint64
	headHash    Hash
	// bytes is the sum of the stored records' lengths, count their number.
	bytes int64
	count int
	// sinceSigned counts records after the newest signed record;
	// unsignedSince is the time of the first of them (zero when none).
	sinceSigned   int
	unsignedSince time.Time
	// cursor is the exporter's delivered seq, valid when hasCursor.
	cursor    uint64
	hasCursor bool
	// changed is closed (and replaced) after every commit.
	changed chan struct{}
}

// Open opens the journal in db, creating its bucket and a signed genesis
// record on first use. signer is the device identity key (a crypto.Signer,
// ECDSA P-256 in the TPM; Ed25519 also works); it signs checkpoints and
// truncation records. An existing journal is loaded as found: damage in it
// is for Verify to report, and never stops new events from being written.
func Open(db *bolt.DB, signer crypto.Signer, opts ...JournalOption) (*Journal, error) {
	o := journalOptions{
		cpEvery:    DefaultCheckpointEvery,
		cpInterval: DefaultCheckpointInterval,
		maxBytes:   DefaultMaxBytes,
		now:        time.Now,
		log:        slog.New(slog.DiscardHandler),
	}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("open event journal: %w", err)
		}
	}
	if db == nil || signer == nil {
		return nil, errors.New("open event journal: nil database or signer")
	}
	id, err := eventlog.KeyID(signer.Public())
	if err != nil {
		return nil, fmt.Errorf("open event journal: %w", err)
	}
	j := &Journal{db: db, signer: signer, keyID: id, o: o, log: o.log.With("component", "events"), changed: make(chan struct{})}
	exists := false
	if err := db.View(func(tx *bolt.Tx) error {
		exists = tx.Bucket(bucketEvents) != nil
		return nil
	}); err != nil {
		return nil, fmt.Errorf("open event journal: %w", err)
	}
	if !exists {
		if err := j.create(); err != nil {
			return nil, fmt.Errorf("open event journal: %w", err)
		}
	}
	if err := j.load(); err != nil {
		if !exists {
			return nil, fmt.Errorf("open event journal: %w", err)
		}
		// Whoever emptied or broke the journal must not also stop it
		// from recording: keep the remains aside and start a new chain.
		if err := j.reset(err); err != nil {
			return nil, fmt.Errorf("open event journal: %w", err)
		}
	}
	return j, nil
}

// reset moves the unusable journal's records to events/damaged (replacing
// an older damaged copy), starts a new chain and records why.
func (j *Journal) reset(cause error) error {
	j.log.Error("event journal cannot be continued; keeping its records aside and starting a new chain", "err", cause)
	err := j.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents)
		if b.Bucket(bucketDamaged) != nil {
			if err := b.DeleteBucket(bucketDamaged); err != nil {
				return err
			}
		}
		d, err := b.CreateBucket(bucketDamaged)
		if err != nil {
			return err
		}
		if b.Bucket(bucketRecords) != nil {
			if err := tx.MoveBucket(bucketRecords, b, d); err != nil {
				return err
			}
		}
		for _, k := range [][]byte{keyChain, keyLastCheckpoint, keyCursor} {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set the damaged journal aside: %w", err)
	}
	*j = Journal{db: j.db, signer: j.signer, keyID: j.keyID, o: j.o, log: j.log, changed: j.changed}
	if err := j.create(); err != nil {
		return err
	}
	if err := j.load(); err != nil {
		return err
	}
	_, err = j.Append(Event{Kind: KindJournalReset, Detail: Detail{"cause": cause.Error()}})
	return err
}

// create writes the bucket and the genesis record.
func (j *Journal) create() error {
	if _, err := rand.Read(j.chain[:]); err != nil {
		return err
	}
	s := &Signed{Chain: j.chain, Key: j.keyID}
	raw, err := j.sealRecord(Hash{}, RecordGenesis, 1, j.o.now(), s)
	if err != nil {
		return err
	}
	err = j.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketEvents)
		if err != nil {
			return err
		}
		if b.Bucket(bucketRecords) != nil {
			return errors.New("records bucket appeared while creating it")
		}
		r, err := b.CreateBucket(bucketRecords)
		if err != nil {
			return err
		}
		if err := b.Put(keyChain, j.chain[:]); err != nil {
			return err
		}
		if err := b.Put(keyLastCheckpoint, raw); err != nil {
			return err
		}
		return r.Put(seqKey(1), raw)
	})
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	j.log.Info("event journal created", "chain", fmt.Sprintf("%x", j.chain))
	return nil
}

// load reads the journal's state from the stored records. It trusts what
// it finds only to continue the chain: head and its hash come from the last
// record itself, so tampering is left for Verify to find and appends go on.
func (j *Journal) load() error {
	return j.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents)
		if b == nil {
			return errors.New("no events bucket")
		}
		r := b.Bucket(bucketRecords)
		if r == nil {
			return errors.New("no records bucket")
		}
		if c := b.Get(keyChain); len(c) == chainIDLen {
			copy(j.chain[:], c)
		} else {
			return fmt.Errorf("chain ID of %d bytes, want %d", len(c), chainIDLen)
		}
		if c := b.Get(keyCursor); c != nil {
			if len(c) != 8 {
				return fmt.Errorf("cursor of %d bytes, want 8", len(c))
			}
			j.cursor, j.hasCursor = binary.BigEndian.Uint64(c), true
		}
		c := r.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(k) != 8 {
				continue // not ours to have written; Verify names it
			}
			seq := binary.BigEndian.Uint64(k)
			if j.count == 0 {
				j.first = seq
			}
			j.count++
			j.bytes += int64(len(v))
			j.head = seq
			if len(v) >= headerLen && RecordType(v[33]).IsSigned() {
				j.sinceSigned, j.unsignedSince = 0, time.Time{}
			} else {
				if j.sinceSigned == 0 && len(v) >= headerLen {
					j.unsignedSince = time.UnixMicro(int64(binary.BigEndian.Uint64(v[42:50])))
				}
				j.sinceSigned++
			}
		}
		if j.count == 0 {
			return errors.New("no records: the genesis record is gone")
		}
		_, last := c.Last()
		j.headHash = sumHash(last)
		return nil
	})
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// sealRecord encodes and signs a signed record.
func (j *Journal) sealRecord(prev Hash, t RecordType, seq uint64, tm time.Time, s *Signed) ([]byte, error) {
	raw := encodeSigned(prev, t, seq, tm, s)
	sig, err := eventlog.Sign(j.signer, signedMessage(raw, s))
	if err != nil {
		return nil, fmt.Errorf("sign %s record %d: %w", t, seq, err)
	}
	return sealSigned(raw, sig)
}

// batch is the records one commit adds, built in memory first so that
// nothing reaches the file (and no state changes) unless all of it does.
type batch struct {
	j        *Journal
	head     uint64
	hash     Hash
	recs     [][]byte
	bytes    int64
	signed   []byte // the newest signed record of the batch, if any
	dropTo   uint64 // records first..dropTo-1 are deleted; 0 for none
	dropped  int64  // their bytes
	firstNew uint64
	now      time.Time
}

func (j *Journal) newBatch() *batch {
	return &batch{j: j, head: j.head, hash: j.headHash, firstNew: j.head + 1, now: j.o.now().UTC()}
}

func (b *batch) add(raw []byte) {
	b.recs = append(b.recs, raw)
	b.bytes += int64(len(raw))
	b.head++
	b.hash = sumHash(raw)
}

func (b *batch) addEvent(ev *Event) {
	ev.Seq = b.head + 1
	b.add(encodeEvent(b.hash, ev))
}

func (b *batch) addSigned(t RecordType, s *Signed) error {
	s.Chain, s.Key = b.j.chain, b.j.keyID
	raw, err := b.j.sealRecord(b.hash, t, b.head+1, b.now, s)
	if err != nil {
		return err
	}
	b.add(raw)
	b.signed = raw
	return nil
}

// Append writes events to the journal in one transaction and returns the
// seq of the last one. Each event is checked and cleaned (see Event); a
// zero Time is set from the clock. A checkpoint is added when one is due,
// and the oldest records are dropped under a signed truncation record
// when the journal would pass its bound. Either all of it is committed or
// nothing is. Append returns once the commit is on disk (bbolt fsyncs each
// commit), so one Append of many events costs one fsync: batch when you
// can, the durability promise holds for the batch as a whole.
func (j *Journal) Append(evs ...Event) (uint64, error) {
	if len(evs) == 0 || len(evs) > MaxBatch {
		return 0, fmt.Errorf("append: %d events, want 1..%d", len(evs), MaxBatch)
	}
	clean := make([]Event, len(evs))
	for i, ev := range evs {
		c, err := sanitize(ev)
		if err != nil {
			return 0, fmt.Errorf("append: %w", err)
		}
		clean[i] = c
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return 0, fmt.Errorf("append: %w", ErrClosed)
	}
	b := j.newBatch()
	for i := range clean {
		ev := &clean[i]
		if ev.Time.IsZero() {
			ev.Time = b.now
		}
		ev.Time = ev.Time.UTC().Truncate(time.Microsecond)
		if us := ev.Time.UnixMicro(); us < 0 || us >= maxTimeMicro {
			return 0, fmt.Errorf("append: %w: time %v outside 1970..9999", ErrInvalidEvent, ev.Time)
		}
		b.addEvent(ev)
	}
	if b.bytes > j.o.maxBytes/4 {
		return 0, fmt.Errorf("append: batch of %d bytes, at most a quarter of the %d-byte bound", b.bytes, j.o.maxBytes)
	}
	if err := j.finish(b, 0); err != nil {
		return 0, fmt.Errorf("append: %w", err)
	}
	if err := j.commit(b); err != nil {
		return 0, fmt.Errorf("append: %w", err)
	}
	return b.head, nil
}

// needsCheckpoint returns why the batch should end in a checkpoint, or 0:
// reason when given and anything is unsigned, else count or time.
func (b *batch) needsCheckpoint(reason Reason) Reason {
	j := b.j
	unsigned := j.sinceSigned + len(b.recs)
	switch {
	case unsigned == 0:
		return 0
	case reason != 0:
		return reason
	case unsigned >= j.o.cpEvery:
		return ReasonCount
	}
	since := j.unsignedSince
	if j.sinceSigned == 0 {
		since = b.now
	}
	if b.now.Sub(since) >= j.o.cpInterval {
		return ReasonTime
	}
	return 0
}

// truncRecordMax is an upper bound of a truncation record plus the gap
// event before it, for the size plan.
const truncRecordMax = headerLen + chainIDLen + keyIDLen + 8 + 32 + 8 + 8 + 2 + maxSigLen + 256

// finish adds the records a batch may need at its end: a truncation (which
// also serves as a checkpoint) when over the bound, else a checkpoint when
// one is due or reason asks for one. A due checkpoint that cannot be signed
// is logged and left for the next batch, so a TPM hiccup loses no event; a
// truncation that cannot be signed fails the batch, so the bound holds.
func (j *Journal) finish(b *batch, reason Reason) error {
	if j.bytes+b.bytes+truncRecordMax > j.o.maxBytes {
		if err := j.truncate(b); err != nil {
			return err
		}
		return nil
	}
	if r := b.needsCheckpoint(reason); r != 0 {
		if err := b.addSigned(RecordCheckpoint, &Signed{Reason: r}); err != nil {
			if reason != 0 {
				return err
			}
			j.log.Warn("checkpoint not written; retried with the next batch", "err", err)
		}
	}
	return nil
}

// truncate plans the drop of the oldest records, down to three quarters of
// the bound, and adds the gap event (when undelivered events go) and the
// signed truncation record to the batch.
func (j *Journal) truncate(b *batch) error {
	low := j.o.maxBytes * 3 / 4
	need := j.bytes + b.bytes + truncRecordMax - low
	var (
		dropTo    = j.first
		dropped   int64
		firstPrev Hash
		found     bool
	)
	err := j.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEvents).Bucket(bucketRecords).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(k) != 8 {
				continue
			}
			seq := binary.BigEndian.Uint64(k)
			if dropped >= need {
				// The first record kept: its prev field is what the
				// truncation record vouches for.
				dropTo, found = seq, true
				if len(v) >= 32 {
					copy(firstPrev[:], v[:32])
				}
				return nil
			}
			dropped += int64(len(v))
			dropTo = seq + 1
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("truncate: %w", err)
	}
	if !found {
		// Everything stored goes; the first record kept is the batch's
		// first, whose prev is the current head.
		dropTo, firstPrev = b.firstNew, j.headHash
	}
	n := dropTo - j.first
	var undelivered uint64
	if j.hasCursor && j.cursor+1 < dropTo {
		from := max(j.cursor+1, j.first)
		undelivered = dropTo - from
		gap := Event{Kind: KindExportGap, Severity: KindExportGap.Severity(), Time: b.now, Detail: Detail{
			"lost": strconv.FormatUint(undelivered, 10),
			"from": strconv.FormatUint(from, 10),
			"to":   strconv.FormatUint(dropTo-1, 10),
		}}
		b.addEvent(&gap)
	}
	b.dropTo, b.dropped = dropTo, dropped
	if !found {
		b.dropped = j.bytes
	}
	return b.addSigned(RecordTruncation, &Signed{FirstSeq: dropTo, FirstPrev: firstPrev, Dropped: n, Undelivered: undelivered})
}

// commit writes a batch in one bbolt transaction and, once it is on disk,
// moves the in-memory state on. Callers hold mu.
func (j *Journal) commit(b *batch) error {
	if len(b.recs) == 0 {
		return nil
	}
	deleted := 0
	err := j.db.Update(func(tx *bolt.Tx) error {
		eb := tx.Bucket(bucketEvents)
		if eb == nil {
			return errors.New("events bucket gone")
		}
		r := eb.Bucket(bucketRecords)
		if r == nil {
			return errors.New("records bucket gone")
		}
		if b.dropTo != 0 {
			// Walk the keys rather than the seq range: a tampered
			// journal may have holes, and the range could be huge.
			c := r.Cursor()
			for k, _ := c.First(); k != nil && bytes.Compare(k, seqKey(b.dropTo)) < 0; k, _ = c.First() {
				if err := c.Delete(); err != nil {
					return err
				}
				deleted++
			}
		}
		for i, raw := range b.recs {
			if err := r.Put(seqKey(b.firstNew+uint64(i)), raw); err != nil {
				return err
			}
		}
		if b.signed != nil {
			return eb.Put(keyLastCheckpoint, b.signed)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	j.head, j.headHash = b.head, b.hash
	j.bytes += b.bytes
	j.count += len(b.recs)
	if b.dropTo != 0 {
		n := deleted
		j.count -= n
		j.bytes -= b.dropped
		j.first = b.dropTo
		j.log.Warn("event journal truncated", "dropped", n, "first", j.first)
	}
	// Records after the batch's last signed record are unsigned.
	last := -1
	for i, raw := range b.recs {
		if RecordType(raw[33]).IsSigned() {
			last = i
		}
	}
	if last >= 0 {
		j.sinceSigned, j.unsignedSince = 0, time.Time{}
	}
	for _, raw := range b.recs[last+1:] {
		if j.sinceSigned == 0 {
			j.unsignedSince = time.UnixMicro(int64(binary.BigEndian.Uint64(raw[42:50])))
		}
		j.sinceSigned++
	}
	close(j.changed)
	j.changed = make(chan struct{})
	return nil
}

// Checkpoint writes a signed checkpoint over the current head, unless the
// head is already signed, and returns the head's seq.
func (j *Journal) Checkpoint() (uint64, error) { return j.checkpoint(ReasonAsked) }

func (j *Journal) checkpoint(reason Reason) (uint64, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return 0, fmt.Errorf("checkpoint: %w", ErrClosed)
	}
	b := j.newBatch()
	if err := j.finish(b, reason); err != nil {
		return 0, fmt.Errorf("checkpoint: %w", err)
	}
	if err := j.commit(b); err != nil {
		return 0, fmt.Errorf("checkpoint: %w", err)
	}
	return b.head, nil
}

// CheckpointIfDue writes a checkpoint when the oldest unsigned record is
// older than the checkpoint interval. The Recorder calls it on a ticker so
// a quiet phone's last events do not stay unsigned.
func (j *Journal) CheckpointIfDue() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed || j.sinceSigned == 0 {
		return nil
	}
	b := j.newBatch()
	if b.now.Sub(j.unsignedSince) < j.o.cpInterval {
		return nil
	}
	if err := b.addSigned(RecordCheckpoint, &Signed{Reason: ReasonTime}); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := j.commit(b); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// Close writes a last checkpoint over any unsigned records and stops the
// journal. It does not close the database, which the caller owns.
func (j *Journal) Close() error {
	if _, err := j.checkpoint(ReasonClose); err != nil && !errors.Is(err, ErrClosed) {
		j.mu.Lock()
		j.closed = true
		j.mu.Unlock()
		return fmt.Errorf("close event journal: %w", err)
	}
	j.mu.Lock()
	j.closed = true
	j.mu.Unlock()
	return nil
}

// Changed returns a channel closed at the next commit.
func (j *Journal) Changed() <-chan struct{} {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.changed
}

// Stats describes the journal.
type Stats struct {
	Chain       [chainIDLen]byte
	First, Head uint64
	HeadHash    Hash
	Records     int
	Bytes       int64
	// Unsigned counts the records after the newest signed record.
	Unsigned int
	// Delivered is the exporter's cursor; HasCursor is false when no
	// exporter has run.
	Delivered uint64
	HasCursor bool
}

// Stats returns the journal's state.
func (j *Journal) Stats() Stats {
	j.mu.Lock()
	defer j.mu.Unlock()
	return Stats{Chain: j.chain, First: j.first, Head: j.head, HeadHash: j.headHash, Records: j.count, Bytes: j.bytes,
		Unsigned: j.sinceSigned, Delivered: j.cursor, HasCursor: j.hasCursor}
}

// enableCursor starts delivery tracking: from now on a truncation that
// drops records past the cursor writes an export gap event. A new cursor
// starts before the first record, so everything stored is delivered.
func (j *Journal) enableCursor() (uint64, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.hasCursor {
		return j.cursor, nil
	}
	if err := j.putCursor(j.first - 1); err != nil {
		return 0, err
	}
	return j.cursor, nil
}

// setCursor records that every record up to seq was delivered. The cursor
// never moves back.
func (j *Journal) setCursor(seq uint64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if seq > j.head {
		return fmt.Errorf("delivery cursor %d past head %d", seq, j.head)
	}
	if j.hasCursor && seq <= j.cursor {
		return nil
	}
	return j.putCursor(seq)
}

func (j *Journal) putCursor(seq uint64) error {
	err := j.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEvents).Put(keyCursor, seqKey(seq))
	})
	if err != nil {
		return fmt.Errorf("store delivery cursor: %w", err)
	}
	j.cursor, j.hasCursor = seq, true
	return nil
}

// List returns up to limit (at most MaxList) records from seq from on, in
// order. A record that does not decode is returned with Err set, so a
// listing shows the damage instead of stopping at it.
func (j *Journal) List(from uint64, limit int) ([]Record, error) {
	if limit <= 0 || limit > MaxList {
		limit = MaxList
	}
	var out []Record
	err := j.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents)
		if b == nil || b.Bucket(bucketRecords) == nil {
			return errors.New("no events bucket")
		}
		c := b.Bucket(bucketRecords).Cursor()
		for k, v := c.Seek(seqKey(from)); k != nil && len(out) < limit; k, v = c.Next() {
			out = append(out, decodeStored(k, v))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	return out, nil
}

// decodeStored decodes a stored record, copying it out of bbolt's map.
func decodeStored(k, v []byte) Record {
	raw := bytes.Clone(v)
	rec, err := decodeRecord(raw)
	if err != nil {
		r := Record{raw: raw, Hash: sumHash(raw), Err: err}
		if len(k) == 8 {
			r.Seq = binary.BigEndian.Uint64(k)
		}
		return r
	}
	if len(k) != 8 || binary.BigEndian.Uint64(k) != rec.Seq {
		rec.Err = fmt.Errorf("stored under key %x but holds seq %d", k, rec.Seq)
	}
	return *rec
}

// DB is the state file the journal lives in, for Verify.
func (j *Journal) DB() *bolt.DB { return j.db }
