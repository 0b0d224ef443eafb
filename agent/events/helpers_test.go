package events

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// fakeClock is an injected clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newDB(t testing.TB) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "state.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("bolt.Open = %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("GenerateKey = %v", err)
	}
	return k
}

func openJournal(t testing.TB, db *bolt.DB, key *ecdsa.PrivateKey, clk *fakeClock, opts ...JournalOption) *Journal {
	t.Helper()
	opts = append([]JournalOption{WithClock(clk.now)}, opts...)
	j, err := Open(db, key, opts...)
	if err != nil {
		t.Fatalf("Open = %v", err)
	}
	return j
}

// testEvent is a scanner event from a peer with a distinguishing detail.
func testEvent(i int) Event {
	return Event{
		Kind:    KindScanner,
		Account: "alice",
		Peer:    netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 5060),
		Detail:  Detail{"user_agent": fmt.Sprintf("friendly-scanner %d", i), "method": "OPTIONS"},
	}
}

// appendN appends n test events in batches of batch, advancing the clock
// by a second per batch.
func appendN(t testing.TB, j *Journal, clk *fakeClock, n, batch int) {
	t.Helper()
	for i := 0; i < n; i += batch {
		var evs []Event
		for k := i; k < min(n, i+batch); k++ {
			evs = append(evs, testEvent(k))
		}
		if _, err := j.Append(evs...); err != nil {
			t.Fatalf("Append(batch at %d) = %v", i, err)
		}
		clk.advance(time.Second)
	}
}

// raw helpers reach into the records bucket, as an attacker with the file
// would.
func getRaw(t testing.TB, db *bolt.DB, seq uint64) []byte {
	t.Helper()
	var out []byte
	db.View(func(tx *bolt.Tx) error {
		out = cloneBytes(tx.Bucket(bucketEvents).Bucket(bucketRecords).Get(seqKey(seq)))
		return nil
	})
	if out == nil {
		t.Fatalf("record %d not stored", seq)
	}
	return out
}

func putRaw(t testing.TB, db *bolt.DB, seq uint64, raw []byte) {
	t.Helper()
	if err := db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEvents).Bucket(bucketRecords).Put(seqKey(seq), raw)
	}); err != nil {
		t.Fatalf("put record %d: %v", seq, err)
	}
}

func deleteRaw(t testing.TB, db *bolt.DB, from, to uint64) {
	t.Helper()
	if err := db.Update(func(tx *bolt.Tx) error {
		r := tx.Bucket(bucketEvents).Bucket(bucketRecords)
		for s := from; s <= to; s++ {
			if err := r.Delete(seqKey(s)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("delete records %d..%d: %v", from, to, err)
	}
}

func putMeta(t testing.TB, db *bolt.DB, key, val []byte) {
	t.Helper()
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketEvents).Put(key, val) }); err != nil {
		t.Fatalf("put meta %s: %v", key, err)
	}
}

// recordsOfType lists the seqs of stored records of type typ.
func recordsOfType(t testing.TB, db *bolt.DB, typ RecordType) []uint64 {
	t.Helper()
	var out []uint64
	db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEvents).Bucket(bucketRecords).ForEach(func(k, v []byte) error {
			if len(v) > 33 && RecordType(v[33]) == typ {
				out = append(out, binary.BigEndian.Uint64(k))
			}
			return nil
		})
	})
	return out
}

func hasProblem(rep *Report, seq uint64, kind ProblemKind) bool {
	for _, p := range rep.Problems {
		if p.Seq == seq && p.Kind == kind {
			return true
		}
	}
	return false
}
