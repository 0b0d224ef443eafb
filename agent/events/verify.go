package events

import (
	"crypto"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"github.com/hardphone/hardphone/crypto/eventlog"
	bolt "go.etcd.io/bbolt"
)

// ProblemKind classifies what Verify found wrong with a record.
type ProblemKind string

// Problems Verify reports.
const (
	// ProblemUndecodable: the record's bytes are not a valid record.
	ProblemUndecodable ProblemKind = "undecodable"
	// ProblemEdited: the record's bytes changed after it was written: its
	// hash no longer matches the prev stored in the next record (or its
	// own prev no longer matches the record before).
	ProblemEdited ProblemKind = "edited"
	// ProblemMissing: records inside the chain are gone.
	ProblemMissing ProblemKind = "missing"
	// ProblemMoved: the record is stored under another seq than its own
	// (records reordered).
	ProblemMoved ProblemKind = "moved"
	// ProblemBadSignature: a checkpoint, truncation or genesis record whose
	// signature does not verify (forged, or altered).
	ProblemBadSignature ProblemKind = "bad_signature"
	// ProblemUnknownKey: a signed record names a key Verify was not given.
	ProblemUnknownKey ProblemKind = "unknown_key"
	// ProblemForeignChain: a signed record of another journal.
	ProblemForeignChain ProblemKind = "foreign_chain"
	// ProblemTruncatedHead: the oldest records are gone and no signed
	// truncation record accounts for it.
	ProblemTruncatedHead ProblemKind = "truncated_head"
	// ProblemTruncatedTail: the newest records are gone, up to a checkpoint
	// the journal kept a copy of.
	ProblemTruncatedTail ProblemKind = "truncated_tail"
	// ProblemRollback: the journal ends before a point known to have
	// existed: the delivery cursor, or a head the collector received.
	ProblemRollback ProblemKind = "rollback"
	// ProblemStray: a record present below the signed truncation point.
	ProblemStray ProblemKind = "stray"
	// ProblemMeta: the journal's own bookkeeping (chain ID, the copy of the
	// newest checkpoint) was altered.
	ProblemMeta ProblemKind = "meta"
)

// Problem is one thing Verify found wrong. Seq names the record (0 for
// the journal's bookkeeping).
type Problem struct {
	Seq    uint64      `json:"seq"`
	Kind   ProblemKind `json:"kind"`
	Detail string      `json:"detail"`
}

func (p Problem) String() string { return fmt.Sprintf("record %d: %s: %s", p.Seq, p.Kind, p.Detail) }

// Report is what Verify proved, and what it found wrong.
type Report struct {
	Chain   string `json:"chain"`
	First   uint64 `json:"first"`
	Last    uint64 `json:"last"`
	Records int    `json:"records"`
	Events  int    `json:"events"`
	Signed  int    `json:"signed"`
	Dropped uint64 `json:"dropped"`
	// LastSigned is the seq of the newest record whose signature verified;
	// Unsigned counts the records after it, which no signature covers.
	LastSigned uint64 `json:"last_signed"`
	Unsigned   int    `json:"unsigned"`
	// Delivered is the exporter's cursor (0 when none).
	Delivered uint64    `json:"delivered"`
	Problems  []Problem `json:"problems"`
}

// OK reports whether no problem was found.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

type verifyOptions struct {
	keys      []crypto.PublicKey
	knownSeq  uint64
	knownHash Hash
	known     bool
}

// VerifyOption configures Verify.
type VerifyOption func(*verifyOptions) error

// VerifyKeys adds keys a signed record may be signed with (an identity key
// replaced earlier in the journal's life).
func VerifyKeys(keys ...crypto.PublicKey) VerifyOption {
	return func(o *verifyOptions) error {
		o.keys = append(o.keys, keys...)
		return nil
	}
}

// VerifyKnownHead checks the journal against a record known to exist from
// elsewhere: the seq and hash the collector last received. A journal that
// ends before it, or holds another record there, was rolled back or
// rewritten.
func VerifyKnownHead(seq uint64, hash Hash) VerifyOption {
	return func(o *verifyOptions) error {
		if seq == 0 {
			return errors.New("known head seq 0")
		}
		o.knownSeq, o.knownHash, o.known = seq, hash, true
		return nil
	}
}

// entry is one stored record as Verify sees it.
type entry struct {
	key  uint64
	hash Hash
	prev Hash
	rec  *Record // nil when undecodable
}

// Verify proves the event journal in db against pub (the device identity
// key) and reports every record it finds wrong. It returns an error
// wrapping ErrTampered when it found any problem, with the Report all the
// same.
//
// What it proves: every record from the first kept one to the last is the
// one written, in place and in order: an edited byte, a deleted record,
// two records swapped, records spliced from another journal are each found
// and the record named (a single edit is named exactly; several edits in
// adjacent records are named to within one record). The start of the chain
// is proved by the genesis record or, after truncations, by the newest
// signed truncation record, which vouches for the first record kept and
// how many went before it; oldest records removed without one are found.
// Every signed record is checked against the given keys, so a checkpoint
// forged with another key is found. Removing the newest records is found
// when it reaches back past the newest checkpoint, whose copy the journal
// keeps apart from the records, or past the delivery cursor or a head the
// collector vouches for (VerifyKnownHead).
//
// What it cannot prove, and why: records after the newest checkpoint
// (Report.Unsigned) are chained but not signed; an attacker who removes
// some of them, and also puts back the kept checkpoint copy and cursor as
// they were, leaves a journal that is a valid earlier state. The same holds
// for the whole state file copied back from earlier. And an attacker with
// root while the agent runs can make the identity key sign (the TPM keeps
// the key, not its use), so it can rewrite what it holds root over and sign
// it again. Both are closed only by what already left the phone: the
// collector holds every exported record's seq and chain hash, and checking
// the journal against it (VerifyKnownHead) finds a rollback or a rewrite
// of anything exported. Export promptly, and checkpoint on export.
func Verify(db *bolt.DB, pub crypto.PublicKey, opts ...VerifyOption) (*Report, error) {
	o := verifyOptions{keys: []crypto.PublicKey{pub}}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("verify event journal: %w", err)
		}
	}
	keys := make(map[[keyIDLen]byte]crypto.PublicKey)
	for _, k := range o.keys {
		id, err := eventlog.KeyID(k)
		if err != nil {
			return nil, fmt.Errorf("verify event journal: %w", err)
		}
		keys[id] = k
	}
	v := &verifier{keys: keys, o: o, rep: &Report{}}
	err := db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents)
		if b == nil {
			return errors.New("no event journal in this state file")
		}
		r := b.Bucket(bucketRecords)
		if r == nil {
			v.problem(0, ProblemMeta, "records bucket missing")
			return nil
		}
		c := r.Cursor()
		for k, val := c.First(); k != nil; k, val = c.Next() {
			v.add(k, val)
		}
		v.metaChain = cloneBytes(b.Get(keyChain))
		v.metaCheckpoint = cloneBytes(b.Get(keyLastCheckpoint))
		if cur := b.Get(keyCursor); len(cur) == 8 {
			v.cursor, v.hasCursor = binary.BigEndian.Uint64(cur), true
		} else if cur != nil {
			v.problem(0, ProblemMeta, "delivery cursor of %d bytes, want 8", len(cur))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("verify event journal: %w", err)
	}
	v.run()
	sort.SliceStable(v.rep.Problems, func(i, j int) bool { return v.rep.Problems[i].Seq < v.rep.Problems[j].Seq })
	if !v.rep.OK() {
		return v.rep, fmt.Errorf("verify event journal: %w: %d problems, first: %s", ErrTampered, len(v.rep.Problems), v.rep.Problems[0])
	}
	return v.rep, nil
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

type verifier struct {
	keys           map[[keyIDLen]byte]crypto.PublicKey
	o              verifyOptions
	rep            *Report
	entries        []entry
	sigOK          map[uint64]bool // signed records whose signature verified, by key
	metaChain      []byte
	metaCheckpoint []byte
	cursor         uint64
	hasCursor      bool
}

func (v *verifier) problem(seq uint64, k ProblemKind, format string, args ...any) {
	v.rep.Problems = append(v.rep.Problems, Problem{Seq: seq, Kind: k, Detail: fmt.Sprintf(format, args...)})
}

// add decodes one stored record and checks its signature. Keys that are
// not 8 bytes were never written by the journal.
func (v *verifier) add(k, val []byte) {
	if len(k) != 8 {
		v.problem(0, ProblemStray, "key %x is not a seq", k)
		return
	}
	e := entry{key: binary.BigEndian.Uint64(k), hash: sumHash(val)}
	if len(val) >= 32 {
		copy(e.prev[:], val[:32])
	}
	rec, err := decodeRecord(cloneBytes(val))
	if err != nil {
		v.problem(e.key, ProblemUndecodable, "%v", err)
	} else {
		e.rec = rec
		if rec.Event != nil {
			rec.Event.Detail = nil // not needed to verify; keeps memory to the chain
		}
	}
	v.entries = append(v.entries, e)
}

// checkSig verifies a signed record's signature (not its chain ID).
func (v *verifier) checkSig(e *entry) bool {
	s := e.rec.Signed
	pub, ok := v.keys[s.Key]
	if !ok {
		v.problem(e.key, ProblemUnknownKey, "%s signed by key %x, not one given", e.rec.Type, s.Key[:8])
		return false
	}
	if !eventlog.VerifySignature(pub, signedMessage(e.rec.raw, s), s.Sig) {
		v.problem(e.key, ProblemBadSignature, "%s signature does not verify: forged or altered", e.rec.Type)
		return false
	}
	return true
}

func (v *verifier) run() {
	rep := v.rep
	if len(v.entries) == 0 {
		v.problem(1, ProblemMissing, "journal has no records, not even its genesis")
		return
	}
	// The anchor: the newest truncation record whose signature verifies,
	// else the genesis record.
	sigOK := make(map[uint64]bool)
	var anchor *entry
	for i := range v.entries {
		e := &v.entries[i]
		if e.rec == nil || e.rec.Signed == nil {
			continue
		}
		if v.checkSig(e) {
			sigOK[e.key] = true
			if e.rec.Type == RecordTruncation || e.rec.Type == RecordGenesis && anchor == nil {
				anchor = e
			}
		}
	}
	anchorFirst, anchorPrev := uint64(1), Hash{}
	var chain [chainIDLen]byte
	switch {
	case anchor == nil:
		v.problem(v.entries[0].key, ProblemTruncatedHead, "no valid genesis or truncation record: the start of the chain is not proved")
		copy(chain[:], v.metaChain)
	case anchor.rec.Type == RecordTruncation:
		anchorFirst, anchorPrev = anchor.rec.Signed.FirstSeq, anchor.rec.Signed.FirstPrev
		chain = anchor.rec.Signed.Chain
		rep.Dropped = anchorFirst - 1
	default:
		chain = anchor.rec.Signed.Chain
	}
	rep.Chain = fmt.Sprintf("%x", chain)
	if len(v.metaChain) != chainIDLen || [chainIDLen]byte(v.metaChain) != chain {
		v.problem(0, ProblemMeta, "chain ID %x kept apart differs from the signed %x", v.metaChain, chain)
	}
	// Walk the chain from the anchor.
	expect, expectPrev := anchorFirst, anchorPrev
	breaks := make(map[uint64]bool)
	moved := make(map[uint64]bool)
	started := false
	for i := range v.entries {
		e := &v.entries[i]
		if e.key < anchorFirst {
			v.problem(e.key, ProblemStray, "record below the first seq %d the truncation record kept", anchorFirst)
			continue
		}
		if !started {
			rep.First, started = e.key, true
		}
		rep.Records++
		rep.Last = e.key
		if e.key > expect {
			if expect == anchorFirst && anchor != nil && anchor.rec.Type == RecordGenesis || expect == anchorFirst && anchor == nil {
				v.problem(expect, ProblemTruncatedHead, "records %d..%d missing at the start, and no signed truncation record accounts for them", expect, e.key-1)
			} else {
				v.problem(expect, ProblemMissing, "%s missing (deleted)", seqRange(expect, e.key-1))
			}
		} else if e.prev != expectPrev {
			breaks[e.key] = true
		}
		if e.rec != nil {
			if e.rec.Seq != e.key {
				moved[e.key] = true
				v.problem(e.key, ProblemMoved, "holds record %d: records reordered", e.rec.Seq)
			}
			switch {
			case e.rec.Event != nil:
				rep.Events++
			case e.rec.Signed != nil:
				if e.rec.Signed.Chain != chain {
					v.problem(e.key, ProblemForeignChain, "%s of chain %x, this journal is %x", e.rec.Type, e.rec.Signed.Chain, chain)
				} else if sigOK[e.key] {
					rep.Signed++
					rep.LastSigned = e.key
				}
			}
		}
		expect, expectPrev = e.key+1, e.hash
	}
	v.attribute(breaks, moved, anchorFirst)
	for i := len(v.entries) - 1; i >= 0 && v.entries[i].key > rep.LastSigned; i-- {
		rep.Unsigned++
	}
	v.tail(chain)
}

// attribute names the record behind each broken link. A break at n means
// record n's prev is not the hash of record n-1. With one edit, an edited
// body of n-1 breaks only link n; an edited prev field of n (or an n
// rewritten whole) breaks links n and n+1.
func (v *verifier) attribute(breaks, moved map[uint64]bool, anchorFirst uint64) {
	seqs := make([]uint64, 0, len(breaks))
	for s := range breaks {
		seqs = append(seqs, s)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	done := make(map[uint64]bool)
	for _, n := range seqs {
		if done[n] {
			continue
		}
		var at uint64
		var why string
		switch {
		case breaks[n+1]:
			at, why = n, fmt.Sprintf("its prev does not match record %d and its hash does not match the prev of record %d", n-1, n+1)
			done[n+1] = true
		case n == anchorFirst:
			at, why = n, "its prev does not match what the signed truncation (or genesis) record vouches for"
		default:
			at, why = n-1, fmt.Sprintf("its hash does not match the prev stored in record %d", n)
		}
		if moved[at] {
			continue // already named
		}
		v.problem(at, ProblemEdited, "record altered: %s", why)
	}
}

// tail checks the end of the journal against what is known to have
// existed: the kept copy of the newest checkpoint, the delivery cursor,
// and a head the caller vouches for.
func (v *verifier) tail(chain [chainIDLen]byte) {
	rep := v.rep
	byKey := func(seq uint64) *entry {
		i := sort.Search(len(v.entries), func(i int) bool { return v.entries[i].key >= seq })
		if i < len(v.entries) && v.entries[i].key == seq {
			return &v.entries[i]
		}
		return nil
	}
	if v.metaCheckpoint == nil {
		v.problem(0, ProblemMeta, "the kept copy of the newest checkpoint is missing")
	} else if cp, err := decodeRecord(v.metaCheckpoint); err != nil || cp.Signed == nil {
		v.problem(0, ProblemMeta, "the kept copy of the newest checkpoint does not decode (%v)", err)
	} else {
		ce := &entry{key: cp.Seq, rec: cp, hash: cp.Hash}
		good := cp.Signed.Chain == chain && v.checkSig(ce)
		switch {
		case !good:
			v.problem(0, ProblemMeta, "the kept copy of the newest checkpoint (seq %d) is not a valid signed record of this journal", cp.Seq)
		case cp.Seq > rep.Last:
			v.problem(rep.Last+1, ProblemTruncatedTail, "records %d..%d missing at the end: the newest checkpoint (seq %d, signed %s) covered them", rep.Last+1, cp.Seq, cp.Seq, cp.Time.Format("2006-01-02T15:04:05Z"))
		default:
			if e := byKey(cp.Seq); e == nil {
				// Already reported as missing by the walk.
			} else if e.hash != cp.Hash {
				v.problem(cp.Seq, ProblemEdited, "differs from the kept copy of the newest checkpoint")
			}
		}
	}
	if v.hasCursor {
		rep.Delivered = v.cursor
		if v.cursor > rep.Last {
			v.problem(rep.Last+1, ProblemRollback, "journal ends at %d but records up to %d were delivered to the collector", rep.Last, v.cursor)
		}
	}
	if v.o.known {
		if e := byKey(v.o.knownSeq); v.o.knownSeq > rep.Last {
			v.problem(rep.Last+1, ProblemRollback, "journal ends at %d but the collector received record %d", rep.Last, v.o.knownSeq)
		} else if e != nil && e.hash != v.o.knownHash {
			v.problem(v.o.knownSeq, ProblemEdited, "differs from the record the collector received")
		}
	}
}

func seqRange(a, b uint64) string {
	if a == b {
		return fmt.Sprintf("record %d", a)
	}
	return fmt.Sprintf("records %d..%d", a, b)
}
