package fleetconfig

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func openDB(t *testing.T) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "state.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("bolt.Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func doc(v uint64) Doc {
	return Doc{Version: v, Data: []byte("max_calls = " + string(rune('0'+v%10)) + "\n")}
}

var t0 = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)

// TestLifecycle: apply, prove, apply, revert; the reverted version is
// never applied again and versions only grow.
func TestLifecycle(t *testing.T) {
	s, err := Open(openDB(t))
	if err != nil {
		t.Fatalf("Open = %v", err)
	}
	st, err := s.State()
	if err != nil || st.Current != nil || st.GoodVersion() != 0 {
		t.Fatalf("State() of a new file = %+v, %v; want empty", st, err)
	}
	if st, err = s.Apply(doc(1), []string{"alice", "alice"}, t0); err != nil || !st.Trial || st.Version() != 1 || st.Previous != nil ||
		!reflect.DeepEqual(st.Watch, []string{"alice"}) || st.GoodVersion() != 0 {
		t.Fatalf("Apply(v1) = %+v, %v", st, err)
	}
	if st, err = s.Started(); err != nil || st.Starts != 1 {
		t.Fatalf("Started() = %+v, %v; want 1 start", st, err)
	}
	if st, err = s.MarkGood(); err != nil || st.Trial || st.Starts != 0 || st.Watch != nil || st.GoodVersion() != 1 {
		t.Fatalf("MarkGood() = %+v, %v", st, err)
	}
	if _, err := s.MarkGood(); !errors.Is(err, ErrNoTrial) {
		t.Fatalf("MarkGood() twice = %v, want ErrNoTrial", err)
	}
	if st, err = s.Apply(doc(2), []string{"alice", "bob"}, t0.Add(time.Hour)); err != nil || st.Previous.Version != 1 || st.GoodVersion() != 1 {
		t.Fatalf("Apply(v2) = %+v, %v", st, err)
	}
	if st, err = s.Revert("bob did not register within 2m0s", t0.Add(2*time.Hour)); err != nil || st.Version() != 1 || st.Trial ||
		st.Previous != nil || st.Reverted.Version != 2 || !strings.Contains(st.Reverted.Reason, "bob") {
		t.Fatalf("Revert() = %+v, %v", st, err)
	}
	before, _ := s.State()
	for _, tc := range []struct {
		v    uint64
		want error
	}{{2, ErrReverted}, {1, ErrOld}, {0, nil}} {
		_, err := s.Apply(doc(tc.v), nil, t0)
		if err == nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Fatalf("Apply(v%d) after the revert = %v, want %v", tc.v, err, tc.want)
		}
		if after, _ := s.State(); !reflect.DeepEqual(before, after) {
			t.Fatalf("refused Apply(v%d) changed the record: %+v -> %+v", tc.v, before, after)
		}
	}
	if _, err := s.Revert("x", t0); !errors.Is(err, ErrNoTrial) {
		t.Fatalf("Revert() without a trial = %v, want ErrNoTrial", err)
	}
	if st, err = s.Apply(doc(3), nil, t0); err != nil || st.Previous.Version != 1 || st.Reverted.Version != 2 {
		t.Fatalf("Apply(v3) = %+v, %v", st, err)
	}
}

// TestSupersedeTrial: a document arriving while another is on trial
// replaces it; the previous stays the last good one and the watched
// accounts stay watched.
func TestSupersedeTrial(t *testing.T) {
	s, err := Open(openDB(t))
	if err != nil {
		t.Fatal(err)
	}
	mustApply := func(v uint64, watch ...string) State {
		t.Helper()
		st, err := s.Apply(doc(v), watch, t0)
		if err != nil {
			t.Fatalf("Apply(v%d) = %v", v, err)
		}
		return st
	}
	mustApply(1)
	if _, err := s.MarkGood(); err != nil {
		t.Fatal(err)
	}
	mustApply(2, "alice")
	st := mustApply(3, "bob")
	if st.Previous.Version != 1 || !reflect.DeepEqual(st.Watch, []string{"bob", "alice"}) {
		t.Fatalf("Apply(v3) over a trial = %+v; want previous v1, watching bob and alice", st)
	}
	// Reverting the first trial with no good document before it: the
	// image's config alone.
	s2, _ := Open(openDB(t))
	if _, err := s2.Apply(doc(1), nil, t0); err != nil {
		t.Fatal(err)
	}
	if st, err := s2.Revert("broken", t0); err != nil || st.Current != nil || st.Version() != 0 {
		t.Fatalf("Revert() of the first document = %+v, %v; want none current", st, err)
	}
}

// TestRefusedInput: what Apply refuses before it reads the record.
func TestRefusedInput(t *testing.T) {
	s, err := Open(openDB(t))
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a", maxName+1)
	many := make([]string, maxWatch+1)
	for i := range many {
		many[i] = string(rune('a'+i%26)) + strings.Repeat("x", i)
	}
	tests := []struct {
		name  string
		doc   Doc
		watch []string
	}{
		{"empty document", Doc{Version: 1}, nil},
		{"oversized document", Doc{Version: 1, Data: make([]byte, MaxDocument+1)}, nil},
		{"version 0", Doc{Data: []byte("x")}, nil},
		{"long account name", doc(1), []string{long}},
		{"empty account name", doc(1), []string{""}},
		{"too many accounts", doc(1), many},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.Apply(tt.doc, tt.watch, t0); err == nil {
				t.Fatalf("Apply(%s) = nil, want a refusal", tt.name)
			}
			if st, _ := s.State(); st.Current != nil {
				t.Fatalf("refused Apply(%s) stored %+v", tt.name, st)
			}
		})
	}
	st, err := s.Refuse(4, strings.Repeat("é", maxReason), t0)
	if err != nil || st.Refused.Version != 4 || len(st.Refused.Reason) > maxReason {
		t.Fatalf("Refuse() = %+v, %v; want a bounded reason", st.Refused, err)
	}
}

// TestDamagedRecord: a record that does not parse is refused and left as
// found.
func TestDamagedRecord(t *testing.T) {
	db := openDB(t)
	if err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		return b.Put(keyState, []byte("{not json"))
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(db); !errors.Is(err, ErrState) {
		t.Fatalf("Open(damaged) = %v, want ErrState", err)
	}
	var got string
	db.View(func(tx *bolt.Tx) error { got = string(tx.Bucket(bucket).Get(keyState)); return nil })
	if got != "{not json" {
		t.Fatalf("Open(damaged) rewrote the record: %q", got)
	}
}
