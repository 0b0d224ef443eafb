package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"
	"time"

	"github.com/hardphone/hardphone/crypto/eventlog"
	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/store"
)

// journal writes raw records as a phone's journal does.
type journal struct {
	t     *testing.T
	key   *ecdsa.PrivateKey
	chain [16]byte
	seq   uint64
	head  eventlog.Hash
	raws  [][]byte
}

func newJournal(t *testing.T, key *ecdsa.PrivateKey) *journal {
	j := &journal{t: t, key: key}
	if _, err := rand.Read(j.chain[:]); err != nil {
		t.Fatal(err)
	}
	j.signed(eventlog.RecordGenesis, &eventlog.Signed{})
	return j
}

func (j *journal) add(raw []byte) {
	j.raws = append(j.raws, raw)
	j.seq++
	j.head = eventlog.Sum(raw)
}

func (j *journal) events(n int) {
	for i := 0; i < n; i++ {
		j.add(eventlog.EncodeEvent(j.head, j.seq+1, time.Unix(1740000000+int64(j.seq), 0), &eventlog.Event{Severity: 4, Kind: "sip.dial_refused"}))
	}
}

func (j *journal) signed(t eventlog.RecordType, s *eventlog.Signed) {
	kid, err := eventlog.KeyID(&j.key.PublicKey)
	if err != nil {
		j.t.Fatal(err)
	}
	s.Chain, s.Key = j.chain, kid
	raw := eventlog.EncodeSigned(j.head, t, j.seq+1, time.Unix(1740000000+int64(j.seq), 0), s)
	sig, err := eventlog.Sign(j.key, eventlog.SignedMessage(raw, s))
	if err != nil {
		j.t.Fatal(err)
	}
	if raw, err = eventlog.Seal(raw, sig); err != nil {
		j.t.Fatal(err)
	}
	j.add(raw)
}

func (j *journal) checkpoint() {
	j.signed(eventlog.RecordCheckpoint, &eventlog.Signed{Reason: eventlog.ReasonExport})
}

// seg proves records from..to (seqs, inclusive).
func (j *journal) seg(from, to uint64) *eventlog.Segment {
	s, err := eventlog.CheckSegment(j.raws[from-1:to], &j.key.PublicKey)
	if err != nil {
		j.t.Fatalf("CheckSegment(%d..%d) = %v", from, to, err)
	}
	return s
}

// TestJoin: how a proved run joins what the fleet holds of a device's
// journal, case by case.
func TestJoin(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	j := newJournal(t, key)                                                                                                             // 1
	j.events(3)                                                                                                                         // 2..4
	j.checkpoint()                                                                                                                      // 5
	j.events(3)                                                                                                                         // 6..8
	j.checkpoint()                                                                                                                      // 9
	j.events(2)                                                                                                                         // 10..11
	j.signed(eventlog.RecordTruncation, &eventlog.Signed{FirstSeq: 10, FirstPrev: eventlog.Sum(j.raws[8]), Dropped: 9, Undelivered: 4}) // 12
	other := newJournal(t, key)
	other.events(1)
	other.checkpoint()
	now := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	held := func(seg *eventlog.Segment) store.EventStream {
		var st store.EventStream
		if _, _, err := join(&st, seg, now); err != nil {
			t.Fatalf("join(first) = %v", err)
		}
		return st
	}
	tests := []struct {
		name     string
		held     *eventlog.Segment // nil: nothing held yet
		seg      *eventlog.Segment
		code     api.Code // "" for accepted
		stored   int
		gapKinds []store.EventGapKind
	}{
		{"first batch from genesis", nil, j.seg(1, 5), "", 5, nil},
		{"next run chains", j.seg(1, 5), j.seg(6, 9), "", 4, nil},
		{"overlap with the held head dropped", j.seg(1, 5), j.seg(3, 9), "", 4, nil},
		{"replay of held records", j.seg(1, 9), j.seg(6, 9), api.CodeConflict, 0, nil},
		{"hole before the run: missing", j.seg(1, 5), j.seg(7, 9), "", 3, []store.EventGapKind{store.GapMissing}},
		{"hole a truncation explains", j.seg(1, 5), j.seg(10, 12), "", 3, []store.EventGapKind{store.GapTruncated}},
		{"first batch after truncation", nil, j.seg(10, 12), "", 3, []store.EventGapKind{store.GapTruncated}},
		{"a new journal replaces", j.seg(1, 5), other.seg(1, 3), "", 3, []store.EventGapKind{store.GapReplaced}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var st store.EventStream
			if tt.held != nil {
				st = held(tt.held)
			}
			before := st
			recs, gaps, err := join(&st, tt.seg, now)
			if tt.code != "" {
				rf, ok := err.(*refusal)
				if !ok || rf.code != tt.code {
					t.Fatalf("join = %v, want a %s refusal", err, tt.code)
				}
				if st.Head != before.Head || len(st.Gaps) != len(before.Gaps) {
					t.Fatalf("a refused join changed the stream: %+v", st)
				}
				return
			}
			if err != nil {
				t.Fatalf("join = %v", err)
			}
			if len(recs) != tt.stored || gaps != len(tt.gapKinds)-len(before.Gaps) && tt.held != nil {
				t.Fatalf("join stored %d records, %d gaps; want %d, %v", len(recs), gaps, tt.stored, tt.gapKinds)
			}
			var kinds []store.EventGapKind
			for _, g := range st.Gaps {
				kinds = append(kinds, g.Kind)
			}
			if len(kinds) != len(tt.gapKinds) || len(kinds) > 0 && kinds[0] != tt.gapKinds[0] {
				t.Fatalf("gaps %v, want %v", kinds, tt.gapKinds)
			}
			if last := tt.seg.Last(); st.Head != last.Seq || st.HeadHash != [32]byte(last.Hash) || st.LastSigned != last.Seq {
				t.Fatalf("stream head %d, want %d", st.Head, last.Seq)
			}
		})
	}
	// A journal rewritten after export: the held head differs.
	t.Run("fork", func(t *testing.T) {
		st := held(j.seg(1, 5))
		st.HeadHash[0] ^= 1
		if _, _, err := join(&st, j.seg(3, 9), now); err == nil {
			t.Fatalf("join(forked overlap) = nil")
		}
		if _, _, err := join(&st, j.seg(6, 9), now); err == nil {
			t.Fatalf("join(forked next run) = nil")
		}
	})
	// An old journal sent again after it was replaced.
	t.Run("replayed old journal", func(t *testing.T) {
		st := held(j.seg(1, 5))
		if _, _, err := join(&st, other.seg(1, 3), now); err != nil {
			t.Fatalf("join(new journal) = %v", err)
		}
		if _, _, err := join(&st, j.seg(6, 9), now); err == nil {
			t.Fatalf("join(the replaced journal) = nil")
		}
	})
}
