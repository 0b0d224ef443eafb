package events

import (
	"crypto/ecdsa"
	"errors"
	"testing"

	"github.com/hardphone/hardphone/crypto/eventlog"
	bolt "go.etcd.io/bbolt"
)

// tamperJournal is a journal of 100 events with a checkpoint every 10
// records and an unsigned tail, for the tamper table.
func tamperJournal(t *testing.T) (*bolt.DB, *ecdsa.PrivateKey, *Journal) {
	t.Helper()
	db, key, clk := newDB(t), newKey(t), newClock()
	j := openJournal(t, db, key, clk, WithCheckpointEvery(10))
	appendN(t, j, clk, 100, 5)
	appendN(t, j, clk, 3, 3) // an unsigned tail
	if rep, err := Verify(db, key.Public()); err != nil {
		t.Fatalf("Verify(untouched) = %v, problems %v", err, rep.Problems)
	}
	return db, key, j
}

// eventSeq returns the seq of the n-th event record from the start.
func eventSeq(t *testing.T, db *bolt.DB, n int) uint64 {
	t.Helper()
	evs := recordsOfType(t, db, RecordEvent)
	if n >= len(evs) {
		t.Fatalf("only %d events", len(evs))
	}
	return evs[n]
}

func lastCheckpoint(t *testing.T, db *bolt.DB) uint64 {
	t.Helper()
	cps := recordsOfType(t, db, RecordCheckpoint)
	if len(cps) < 2 {
		t.Fatalf("only %d checkpoints", len(cps))
	}
	return cps[len(cps)-1]
}

// forgeCheckpoint rewrites the checkpoint at seq c signed by signer, naming
// key id as the signer.
func forgeCheckpoint(t *testing.T, db *bolt.DB, c uint64, signer *ecdsa.PrivateKey, id [keyIDLen]byte) {
	t.Helper()
	rec, err := decodeRecord(getRaw(t, db, c))
	if err != nil || rec.Type != RecordCheckpoint {
		t.Fatalf("record %d: %v, type %v; want a checkpoint", c, err, rec.Type)
	}
	s := &Signed{Chain: rec.Signed.Chain, Key: id, Reason: rec.Signed.Reason}
	raw := encodeSigned(rec.Prev, RecordCheckpoint, c, rec.Time, s)
	sig, err := eventlog.Sign(signer, signedMessage(raw, s))
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	raw, err = sealSigned(raw, sig)
	if err != nil {
		t.Fatalf("seal: %v", err)
	}
	putRaw(t, db, c, raw)
}

func TestVerifyFindsTampering(t *testing.T) {
	tests := []struct {
		name string
		// tamper changes the file and returns the seq and problem Verify
		// must report.
		tamper func(t *testing.T, db *bolt.DB, key *ecdsa.PrivateKey, j *Journal) (uint64, ProblemKind)
	}{
		{"edit a byte of an event", func(t *testing.T, db *bolt.DB, _ *ecdsa.PrivateKey, _ *Journal) (uint64, ProblemKind) {
			s := eventSeq(t, db, 40)
			raw := getRaw(t, db, s)
			raw[len(raw)-1] ^= 1 // a digit of the user agent: still canonical
			if _, err := decodeRecord(raw); err != nil {
				t.Fatalf("edited record no longer decodes (%v); the test wants a silent edit", err)
			}
			putRaw(t, db, s, raw)
			return s, ProblemEdited
		}},
		{"edit the prev hash of a record", func(t *testing.T, db *bolt.DB, _ *ecdsa.PrivateKey, _ *Journal) (uint64, ProblemKind) {
			s := eventSeq(t, db, 41)
			raw := getRaw(t, db, s)
			raw[5] ^= 0x80
			putRaw(t, db, s, raw)
			return s, ProblemEdited
		}},
		{"edit the last record before a checkpoint", func(t *testing.T, db *bolt.DB, _ *ecdsa.PrivateKey, _ *Journal) (uint64, ProblemKind) {
			s := lastCheckpoint(t, db) - 1
			raw := getRaw(t, db, s)
			raw[len(raw)-1] ^= 1
			putRaw(t, db, s, raw)
			return s, ProblemEdited
		}},
		{"delete a record", func(t *testing.T, db *bolt.DB, _ *ecdsa.PrivateKey, _ *Journal) (uint64, ProblemKind) {
			s := eventSeq(t, db, 50)
			deleteRaw(t, db, s, s)
			return s, ProblemMissing
		}},
		{"reorder two records", func(t *testing.T, db *bolt.DB, _ *ecdsa.PrivateKey, _ *Journal) (uint64, ProblemKind) {
			a, b := eventSeq(t, db, 20), eventSeq(t, db, 23)
			ra, rb := getRaw(t, db, a), getRaw(t, db, b)
			putRaw(t, db, a, rb)
			putRaw(t, db, b, ra)
			return a, ProblemMoved
		}},
		{"truncate the tail before the last checkpoint", func(t *testing.T, db *bolt.DB, _ *ecdsa.PrivateKey, j *Journal) (uint64, ProblemKind) {
			from := lastCheckpoint(t, db) - 3
			deleteRaw(t, db, from, j.Stats().Head)
			return from, ProblemTruncatedTail
		}},
		{"forge a checkpoint with another key", func(t *testing.T, db *bolt.DB, _ *ecdsa.PrivateKey, _ *Journal) (uint64, ProblemKind) {
			c := recordsOfType(t, db, RecordCheckpoint)[3]
			other := newKey(t)
			id, _ := eventlog.KeyID(other.Public())
			forgeCheckpoint(t, db, c, other, id)
			return c, ProblemUnknownKey
		}},
		{"forge a checkpoint under our key ID", func(t *testing.T, db *bolt.DB, key *ecdsa.PrivateKey, _ *Journal) (uint64, ProblemKind) {
			c := recordsOfType(t, db, RecordCheckpoint)[3]
			id, _ := eventlog.KeyID(key.Public())
			forgeCheckpoint(t, db, c, newKey(t), id)
			return c, ProblemBadSignature
		}},
		{"delete the oldest records", func(t *testing.T, db *bolt.DB, _ *ecdsa.PrivateKey, _ *Journal) (uint64, ProblemKind) {
			deleteRaw(t, db, 1, 6)
			return 1, ProblemTruncatedHead
		}},
		{"roll back below the delivery cursor", func(t *testing.T, db *bolt.DB, _ *ecdsa.PrivateKey, j *Journal) (uint64, ProblemKind) {
			head := j.Stats().Head
			putMeta(t, db, keyCursor, seqKey(head))
			deleteRaw(t, db, head-1, head) // unsigned tail records, delivered
			return head - 1, ProblemRollback
		}},
		{"splice a record of another journal", func(t *testing.T, db *bolt.DB, key *ecdsa.PrivateKey, _ *Journal) (uint64, ProblemKind) {
			other, clk := newDB(t), newClock()
			oj := openJournal(t, other, key, clk, WithCheckpointEvery(10))
			appendN(t, oj, clk, 100, 5)
			c := recordsOfType(t, db, RecordCheckpoint)[2]
			putRaw(t, db, c, getRaw(t, other, c))
			return c, ProblemForeignChain
		}},
		{"rewrite the chain ID", func(t *testing.T, db *bolt.DB, _ *ecdsa.PrivateKey, _ *Journal) (uint64, ProblemKind) {
			putMeta(t, db, keyChain, make([]byte, chainIDLen))
			return 0, ProblemMeta
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, key, j := tamperJournal(t)
			seq, kind := tt.tamper(t, db, key, j)
			rep, err := Verify(db, key.Public())
			if !errors.Is(err, ErrTampered) {
				t.Fatalf("Verify() = %v, want ErrTampered", err)
			}
			t.Logf("problems: %v", rep.Problems)
			if !hasProblem(rep, seq, kind) {
				t.Errorf("Verify() problems = %v, want %s at record %d", rep.Problems, kind, seq)
			}
			// A single edit names one record, not a neighbour.
			if kind == ProblemEdited {
				for _, p := range rep.Problems {
					if p.Kind == ProblemEdited && p.Seq != seq {
						t.Errorf("Verify() also blames record %d: %v", p.Seq, p)
					}
				}
			}
		})
	}
}

// TestVerifyUnsignedTailLimit pins down what a local journal cannot see:
// records after the newest checkpoint removed (with nothing else touched)
// leave a valid earlier state. What the collector received finds it.
func TestVerifyUnsignedTailLimit(t *testing.T) {
	db, key, j := tamperJournal(t)
	st := j.Stats()
	if st.Unsigned < 2 {
		t.Fatalf("Stats().Unsigned = %d, want an unsigned tail", st.Unsigned)
	}
	deleteRaw(t, db, st.Head, st.Head)
	rep, err := Verify(db, key.Public())
	if err != nil {
		t.Fatalf("Verify(unsigned tail record removed) = %v, want nil: this is the documented gap", err)
	}
	if rep.Unsigned != st.Unsigned-1 {
		t.Errorf("Verify().Unsigned = %d, want %d", rep.Unsigned, st.Unsigned-1)
	}
	rep, err = Verify(db, key.Public(), VerifyKnownHead(st.Head, st.HeadHash))
	if !errors.Is(err, ErrTampered) || !hasProblem(rep, st.Head, ProblemRollback) {
		t.Errorf("Verify(known head %d) = %v, problems %v, want rollback at %d", st.Head, err, rep.Problems, st.Head)
	}
}

// TestVerifyAfterIdentityChange: a replaced identity key signs on; Verify
// needs both keys, and names the old key's records without it.
func TestVerifyAfterIdentityChange(t *testing.T) {
	db, oldKey, clk := newDB(t), newKey(t), newClock()
	j := openJournal(t, db, oldKey, clk, WithCheckpointEvery(4))
	appendN(t, j, clk, 10, 2)
	newK := newKey(t)
	j2 := openJournal(t, db, newK, clk, WithCheckpointEvery(4))
	appendN(t, j2, clk, 10, 2)
	if rep, err := Verify(db, newK.Public(), VerifyKeys(oldKey.Public())); err != nil {
		t.Fatalf("Verify(both keys) = %v, %v", err, rep.Problems)
	}
	rep, err := Verify(db, newK.Public())
	if !errors.Is(err, ErrTampered) || !hasProblem(rep, 1, ProblemUnknownKey) {
		t.Errorf("Verify(new key only) = %v, %v; want the genesis named as signed by an unknown key", err, rep.Problems)
	}
}
