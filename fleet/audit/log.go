package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// Log is an append-only, tamper-evident audit log over a Storage. It is
// safe for concurrent use, and any number of Logs (hpfleet replicas) may
// share one Storage's database: appends are serialised by the Storage.
type Log struct {
	st    Storage // never nil
	key   *Key    // never nil
	trust *Trust  // the key's public half and any previous keys
	now   func() time.Time
	log   *slog.Logger
}

type options struct {
	now   func() time.Time
	log   *slog.Logger
	trust []string
}

// Option configures New.
type Option func(*options) error

// WithClock sets the clock that stamps entries appended without a time;
// the default is time.Now.
func WithClock(now func() time.Time) Option {
	return func(o *options) error {
		if now == nil {
			return errors.New("nil clock")
		}
		o.now = now
		return nil
	}
}

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("nil logger")
		}
		o.log = l
		return nil
	}
}

// WithPreviousKeys trusts the public keys (text form) that signed this
// log's older checkpoints, after a key rotation or for the other
// replicas' keys, when Check and LatestCheckpoint verify stored notes.
func WithPreviousKeys(vkeys ...string) Option {
	return func(o *options) error {
		if _, err := NewTrust(vkeys...); err != nil {
			return err
		}
		o.trust = append(o.trust, vkeys...)
		return nil
	}
}

// New returns the log kept in st and signed with key. It does not check
// the stored log; call Check for that (hpfleet does at start).
func New(st Storage, key *Key, opts ...Option) (*Log, error) {
	o := options{now: time.Now, log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("new audit log: %w", err)
		}
	}
	if st == nil || key == nil {
		return nil, errors.New("new audit log: nil storage or key")
	}
	trust, err := NewTrust(append([]string{key.VerifierKey()}, o.trust...)...)
	if err != nil {
		return nil, fmt.Errorf("new audit log: %w", err)
	}
	return &Log{st: st, key: key, trust: trust, now: o.now,
		log: o.log.With("component", "audit", "origin", key.Origin())}, nil
}

// Origin is the log's name.
func (l *Log) Origin() string { return l.key.Origin() }

// Trust returns the keys this log's checkpoints and seals verify with.
func (l *Log) Trust() *Trust { return l.trust }

// Append normalizes e (cleans and bounds its strings, stamps the time
// when zero), appends it and returns its index. A refused entry changes
// nothing.
func (l *Log) Append(ctx context.Context, e Entry) (int64, error) {
	return l.AppendBatch(ctx, []Entry{e})
}

// AppendBatch appends entries in one transaction, at consecutive indexes,
// and returns the index of the first. All are appended or none.
func (l *Log) AppendBatch(ctx context.Context, entries []Entry) (int64, error) {
	if len(entries) == 0 || len(entries) > MaxAppendBatch {
		return 0, fmt.Errorf("append: %d entries, want 1..%d: %w", len(entries), MaxAppendBatch, ErrInvalid)
	}
	now := l.now()
	norm := make([]Entry, len(entries))
	for i, e := range entries {
		if e.Time.IsZero() {
			e.Time = now
		}
		norm[i] = e.normalize()
		// Validate before the transaction: a bad entry never holds the
		// log's lock.
		if _, err := norm[i].Encode(); err != nil {
			return 0, fmt.Errorf("append: entry %d of %d: %w", i, len(entries), err)
		}
	}
	first, err := l.st.Append(ctx, func(size int64, r tlog.HashReader) ([]Record, []tlog.Hash, error) {
		base := tlog.StoredHashCount(size)
		var hashes []tlog.Hash
		// Hashes of earlier entries of this batch are not stored yet.
		over := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
			out := make([]tlog.Hash, len(idx))
			var need []int64
			for _, x := range idx {
				if x < base {
					need = append(need, x)
				}
			}
			got, err := r.ReadHashes(need)
			if err != nil {
				return nil, err
			}
			for i, x := range idx {
				if x < base {
					out[i], got = got[0], got[1:]
					continue
				}
				if x-base >= int64(len(hashes)) {
					return nil, fmt.Errorf("stored hash %d not written yet: %w", x, ErrNotFound)
				}
				out[i] = hashes[x-base]
			}
			return out, nil
		})
		recs := make([]Record, len(norm))
		for i := range norm {
			norm[i].Index = size + int64(i)
			data, err := norm[i].Encode()
			if err != nil {
				return nil, nil, err
			}
			h, err := tlog.StoredHashes(norm[i].Index, data, over)
			if err != nil {
				return nil, nil, fmt.Errorf("tree hashes of %d: %w", norm[i].Index, err)
			}
			hashes = append(hashes, h...)
			seal, err := l.key.seal(tlog.RecordHash(data))
			if err != nil {
				return nil, nil, err
			}
			recs[i] = Record{Data: data, Seal: seal}
		}
		return recs, hashes, nil
	})
	if err != nil {
		return 0, fmt.Errorf("append to audit log: %w", err)
	}
	return first, nil
}

// Size is the number of entries.
func (l *Log) Size(ctx context.Context) (int64, error) {
	n, err := l.st.Size(ctx)
	if err != nil {
		return 0, fmt.Errorf("audit log size: %w", err)
	}
	return n, nil
}

func (l *Log) reader(ctx context.Context) tlog.HashReader {
	return tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) { return l.st.ReadHashes(ctx, idx) })
}

// Checkpoint returns a signed checkpoint of the log as it is now: the
// stored one when the log has not grown since, else a new one, stored.
// It refuses (ErrTampered) to sign a tree that is not an extension of the
// last checkpoint stored: a log rolled back or edited underneath is not
// blessed with a fresh signature.
func (l *Log) Checkpoint(ctx context.Context) (Checkpoint, error) {
	// The latest checkpoint first, then the size: sizes only grow and a
	// checkpoint is signed only for a size reached, so in this order a
	// replica's concurrent checkpoint can never look larger than the log.
	latest, err := l.LatestCheckpoint(ctx)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Checkpoint{}, fmt.Errorf("checkpoint: %w", err)
	}
	size, err := l.st.Size(ctx)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint: %w", err)
	}
	switch {
	case size == 0:
		return Checkpoint{}, fmt.Errorf("checkpoint: %w", ErrEmpty)
	case latest.Size > size:
		return Checkpoint{}, fmt.Errorf("checkpoint: log has %d entries, a checkpoint of %d was signed: %w", size, latest.Size, ErrTampered)
	case latest.Size == size:
		if err := l.checkRoot(ctx, latest); err != nil {
			return Checkpoint{}, fmt.Errorf("checkpoint: %w", err)
		}
		return latest, nil
	}
	root, err := tlog.TreeHash(size, l.reader(ctx))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint: tree hash of %d: %w", size, err)
	}
	if latest.Size > 0 {
		proof, err := tlog.ProveTree(size, latest.Size, l.reader(ctx))
		if err != nil {
			return Checkpoint{}, fmt.Errorf("checkpoint: %w", err)
		}
		if err := tlog.CheckTree(proof, size, root, latest.Size, latest.Root); err != nil {
			return Checkpoint{}, fmt.Errorf("checkpoint: tree of %d is not an extension of the checkpoint of %d: %w", size, latest.Size, ErrTampered)
		}
	}
	cp, err := l.key.signCheckpoint(size, root)
	if err != nil {
		return Checkpoint{}, err
	}
	if err := l.st.AddCheckpoint(ctx, size, cp.Note); err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint: store: %w", err)
	}
	l.log.Info("audit checkpoint signed", "size", size, "root", root.String())
	return cp, nil
}

// LatestCheckpoint returns the stored checkpoint of the largest size,
// verified against the trusted keys (ErrNotFound when none is stored).
func (l *Log) LatestCheckpoint(ctx context.Context) (Checkpoint, error) {
	sc, err := l.st.LatestCheckpoint(ctx)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("latest checkpoint: %w", err)
	}
	return l.parseStored(sc)
}

// Checkpoints returns up to n stored checkpoints of size >= from, each
// verified.
func (l *Log) Checkpoints(ctx context.Context, from int64, n int) ([]Checkpoint, error) {
	scs, err := l.st.Checkpoints(ctx, from, n)
	if err != nil {
		return nil, fmt.Errorf("checkpoints: %w", err)
	}
	out := make([]Checkpoint, 0, len(scs))
	for _, sc := range scs {
		cp, err := l.parseStored(sc)
		if err != nil {
			return nil, err
		}
		out = append(out, cp)
	}
	return out, nil
}

func (l *Log) parseStored(sc StoredCheckpoint) (Checkpoint, error) {
	cp, err := ParseCheckpoint(sc.Note, l.trust)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("stored checkpoint of size %d: %w (%w)", sc.Size, err, ErrTampered)
	}
	if cp.Size != sc.Size || cp.Origin != l.Origin() {
		return Checkpoint{}, fmt.Errorf("stored checkpoint under size %d signs %s: %w", sc.Size, cp, ErrTampered)
	}
	return cp, nil
}

func (l *Log) checkRoot(ctx context.Context, cp Checkpoint) error {
	root, err := tlog.TreeHash(cp.Size, l.reader(ctx))
	if err != nil {
		return fmt.Errorf("tree hash of %d: %w", cp.Size, err)
	}
	if root != cp.Root {
		return fmt.Errorf("stored tree of %d has root %s, its checkpoint signed %s: %w", cp.Size, root, cp.Root, ErrTampered)
	}
	return nil
}

// Check verifies the stored log against its latest checkpoint: the
// checkpoint's signature, the log not shorter than it, and the stored
// tree's root at its size. It returns that checkpoint. It reads O(log n)
// hashes; the full audit of every entry is Export then Verify.
func (l *Log) Check(ctx context.Context) (Checkpoint, error) {
	cp, err := l.LatestCheckpoint(ctx)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("check audit log: %w", err)
	}
	size, err := l.st.Size(ctx)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("check audit log: %w", err)
	}
	if size < cp.Size {
		return Checkpoint{}, fmt.Errorf("check audit log: %d entries, checkpoint signed %d: %w", size, cp.Size, ErrTampered)
	}
	if err := l.checkRoot(ctx, cp); err != nil {
		return Checkpoint{}, fmt.Errorf("check audit log: %w", err)
	}
	return cp, nil
}

// SealedEntry is an entry as stored: decoded, with its encoding and seal.
type SealedEntry struct {
	Entry Entry
	Data  []byte
	Seal  []byte
}

// Entries returns up to n (1..MaxReadRecords) entries from index from on,
// decoded and with their seals checked; a stored record that does not
// decode or whose seal fails is an ErrTampered error naming its index.
func (l *Log) Entries(ctx context.Context, from int64, n int) ([]SealedEntry, error) {
	if from < 0 || n < 1 || n > MaxReadRecords {
		return nil, fmt.Errorf("read entries from %d, %d of them: %w", from, n, ErrInvalid)
	}
	recs, err := l.st.ReadRecords(ctx, from, n)
	if err != nil {
		return nil, fmt.Errorf("read entries from %d: %w", from, err)
	}
	out := make([]SealedEntry, len(recs))
	for i, r := range recs {
		idx := from + int64(i)
		e, err := DecodeEntry(r.Data)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w (%w)", idx, err, ErrTampered)
		}
		if e.Index != idx {
			return nil, fmt.Errorf("entry stored at %d says index %d: %w", idx, e.Index, ErrTampered)
		}
		if err := l.trust.checkSeal(l.Origin(), r.Data, r.Seal); err != nil {
			return nil, fmt.Errorf("entry %d: %w (%w)", idx, err, ErrTampered)
		}
		out[i] = SealedEntry{Entry: e, Data: r.Data, Seal: r.Seal}
	}
	return out, nil
}

// InclusionProof proves that the entry at index is in the tree of size
// entries (a checkpoint's size).
func (l *Log) InclusionProof(ctx context.Context, index, size int64) (tlog.RecordProof, error) {
	if err := l.checkSizes(ctx, index+1, size); err != nil {
		return nil, fmt.Errorf("inclusion proof of %d in %d: %w", index, size, err)
	}
	p, err := tlog.ProveRecord(size, index, l.reader(ctx))
	if err != nil {
		return nil, fmt.Errorf("inclusion proof of %d in %d: %w", index, size, err)
	}
	return p, nil
}

// ConsistencyProof proves that the tree of old entries is a prefix of the
// tree of new entries (0 < old <= new <= Size).
func (l *Log) ConsistencyProof(ctx context.Context, old, new int64) (tlog.TreeProof, error) {
	if err := l.checkSizes(ctx, old, new); err != nil {
		return nil, fmt.Errorf("consistency proof of %d and %d: %w", old, new, err)
	}
	p, err := tlog.ProveTree(new, old, l.reader(ctx))
	if err != nil {
		return nil, fmt.Errorf("consistency proof of %d and %d: %w", old, new, err)
	}
	return p, nil
}

func (l *Log) checkSizes(ctx context.Context, small, big int64) error {
	if small < 1 || small > big {
		return fmt.Errorf("sizes %d, %d: %w", small, big, ErrInvalid)
	}
	size, err := l.st.Size(ctx)
	if err != nil {
		return err
	}
	if big > size {
		return fmt.Errorf("log has %d entries: %w", size, ErrNotFound)
	}
	return nil
}
