package eventlog

import (
	"crypto"
	"fmt"
)

// Segment is a run of a journal's records that CheckSegment proved: in
// order, each chained to the one before, and ending in a record the
// identity key signed, so the signature covers every record of it.
type Segment struct {
	// Records are the decoded records, in seq order.
	Records []*Record
	// Chain is the journal's chain ID, from its signed records.
	Chain [ChainIDLen]byte
}

// First and Last are the segment's first and last records.
func (s *Segment) First() *Record { return s.Records[0] }
func (s *Segment) Last() *Record  { return s.Records[len(s.Records)-1] }

// CheckSegment decodes raws and proves them one run of a journal signed by
// pub (the device's identity key):
//
//   - every record decodes (canonically, within every bound);
//   - seqs are consecutive and each record's prev is the hash of the one
//     before (ErrChain);
//   - a genesis record is seq 1 with a zero prev, and seq 1 is a genesis;
//     a truncation record vouches only for records up to itself;
//   - every signed record names pub's key ID and its signature verifies
//     (ErrSignature), and all of them carry one chain ID (ErrChain);
//   - the last record is a signed one (ErrSignature): since a signature
//     covers the prev hash, the chain of hashes makes it cover every
//     record before it in the segment.
//
// What it cannot prove is how the segment joins what came before it (the
// first record's prev): that is the caller's, who holds the previous head.
func CheckSegment(raws [][]byte, pub crypto.PublicKey) (*Segment, error) {
	if len(raws) == 0 {
		return nil, fmt.Errorf("%w: no records", ErrChain)
	}
	kid, err := KeyID(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSignature, err)
	}
	seg := &Segment{Records: make([]*Record, 0, len(raws))}
	haveChain := false
	for i, raw := range raws {
		rec, err := Decode(raw)
		if err != nil {
			return nil, fmt.Errorf("record %d of the segment: %w", i, err)
		}
		if i > 0 {
			prev := seg.Records[i-1]
			if rec.Seq != prev.Seq+1 {
				return nil, fmt.Errorf("%w: record %d follows record %d", ErrChain, rec.Seq, prev.Seq)
			}
			if rec.Prev != prev.Hash {
				return nil, fmt.Errorf("%w: record %d's prev is not the hash of record %d", ErrChain, rec.Seq, prev.Seq)
			}
		}
		if (rec.Type == RecordGenesis) != (rec.Seq == 1) || rec.Type == RecordGenesis && rec.Prev != (Hash{}) {
			return nil, fmt.Errorf("%w: record %d is a %s record with prev %x: a journal starts with its genesis at seq 1", ErrChain, rec.Seq, rec.Type, rec.Prev[:4])
		}
		if s := rec.Signed; s != nil {
			if s.Key != kid {
				return nil, fmt.Errorf("%w: %s record %d signed by key %x, not the device's %x", ErrSignature, rec.Type, rec.Seq, s.Key[:8], kid[:8])
			}
			if !rec.CheckSignature(pub) {
				return nil, fmt.Errorf("%w: %s record %d: signature does not verify (forged or altered)", ErrSignature, rec.Type, rec.Seq)
			}
			switch {
			case !haveChain:
				seg.Chain, haveChain = s.Chain, true
			case s.Chain != seg.Chain:
				return nil, fmt.Errorf("%w: record %d is of journal %x, the segment's is %x", ErrChain, rec.Seq, s.Chain, seg.Chain)
			}
			if rec.Type == RecordTruncation && (s.FirstSeq == 0 || s.FirstSeq > rec.Seq) {
				return nil, fmt.Errorf("%w: truncation record %d vouches for record %d after itself", ErrChain, rec.Seq, s.FirstSeq)
			}
		}
		seg.Records = append(seg.Records, rec)
	}
	if last := seg.Last(); last.Signed == nil {
		return nil, fmt.Errorf("%w: the segment ends in unsigned record %d: nothing the identity key signed covers it", ErrSignature, last.Seq)
	}
	return seg, nil
}
